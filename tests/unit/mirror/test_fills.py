"""What of a file still coming from upstream may go to clients."""

from __future__ import annotations

from controller.mirror.fills import FINAL_BYTES_HELD, sendable


def test_the_written_bytes_go_out_as_they_arrive() -> None:
    assert sendable(written=500, total=1000, verified=False) == 500


def test_the_final_bytes_wait_for_the_digest() -> None:
    assert FINAL_BYTES_HELD >= 1
    assert sendable(written=1000, total=1000, verified=False) == 1000 - FINAL_BYTES_HELD
    assert sendable(written=1000, total=1000, verified=True) == 1000


def test_an_empty_file_has_nothing_to_hold_back() -> None:
    assert sendable(written=0, total=0, verified=False) == 0
    assert sendable(written=0, total=0, verified=True) == 0

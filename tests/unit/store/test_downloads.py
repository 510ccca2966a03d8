"""Download history and ownership: every attempt recorded, the successful ones owned."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.store import DownloadOutcome, StateStore
from tests.support.factories import C1, NOW
from tests.unit.store.samples import download


def test_download_history_newest_first_filtered_and_limited(store: StateStore) -> None:
    first = download(store, model="t2v", offset=0)
    download(store, model="i2v", offset=10, outcome=DownloadOutcome.FAILED, message="reset")
    third = download(store, model="t2v", offset=20, outcome=DownloadOutcome.CORRUPT)

    history = store.download_history()
    assert [r.model for r in history] == ["t2v", "i2v", "t2v"]
    assert [r.id for r in store.download_history("t2v")] == [third, first]
    assert len(store.download_history(limit=1)) == 1
    assert store.download_history("absent") == []

    failed = history[1]
    assert failed.outcome is DownloadOutcome.FAILED
    assert failed.message == "reset"
    assert failed.repo == "Wan-AI/Wan2.2-T2V-A14B"
    assert failed.commit == C1
    assert failed.started_at == NOW + timedelta(seconds=10)
    assert failed.finished_at == NOW + timedelta(seconds=11)
    assert failed.seconds == 1.0


def test_download_duration_may_come_from_a_monotonic_clock(store: StateStore) -> None:
    download(store, seconds=0.25)
    assert store.download_history()[0].seconds == 0.25

    with pytest.raises(ValueError, match="seconds"):
        download(store, started_at=NOW, finished_at=NOW - timedelta(seconds=1))


def test_throughput_over_the_last_successful_downloads(store: StateStore) -> None:
    assert store.throughput() is None

    download(store, offset=0, bytes=10_000, seconds=1.0)  # oldest: outside window=2
    download(store, offset=1, bytes=999_999, seconds=1.0, outcome=DownloadOutcome.FAILED)
    download(store, offset=2, bytes=300, seconds=1.0)
    download(store, offset=3, bytes=0, seconds=5.0)  # nothing moved: not a rate sample
    download(store, offset=4, bytes=900, seconds=2.0)

    assert store.throughput(window=2) == pytest.approx((300 + 900) / 3.0)
    assert store.throughput() == pytest.approx((10_000 + 300 + 900) / 4.0)


def test_invalid_outcome_is_rejected(store: StateStore) -> None:
    with pytest.raises(ValueError):
        download(store, outcome="maybe")
    assert store.download_history() == []


# --------------------------------------------------------------------------- ownership


@pytest.mark.parametrize(
    ("outcome", "owned"),
    [(DownloadOutcome.OK, True), (DownloadOutcome.FAILED, False), (DownloadOutcome.CORRUPT, False)],
)
def test_only_a_successful_download_is_owned(
    store: StateStore, outcome: DownloadOutcome, owned: bool
) -> None:
    download(store, model="a", path="x.bin", outcome=outcome)
    expected = [("x.bin", "a", False, NOW + timedelta(seconds=1))] if owned else []
    assert [(o.path, o.model, o.adopted, o.since) for o in store.owned()] == expected


def test_adopting_keeps_what_was_downloaded(store: StateStore) -> None:
    download(store, model="a", repo="org/a", commit=C1, path="x.bin")
    assert store.adopt("a", "org/a", C1, ["x.bin", "y.bin"], NOW) == 1
    assert store.adopt("a", "org/a", C1, ["y.bin"], NOW) == 0
    assert [(o.path, o.adopted) for o in store.owned()] == [("x.bin", False), ("y.bin", True)]

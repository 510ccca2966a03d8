"""A partial's sidecar as its writer keeps it: progress records rewritten in place."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from controller.hub import sidecar
from controller.hub.ranges import Span, merged
from controller.hub.sidecar import Records, Sidecar

SHA = "a" * 64


def record(*spans: tuple[int, int], validator: str | None = None) -> Sidecar:
    done = merged(Span(a, b) for a, b in spans)
    return Sidecar("org/model", "model.safetensors", "c" * 40, SHA, 1 << 30, validator, done)


def test_progress_is_read_back_as_the_latest_record(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    records = Records(path)
    records.replace(record(), durable=True)
    for end in (4, 8, 12):
        records.progress(record((0, end << 20)))
        assert sidecar.read(path) == record((0, end << 20))
    records.close()
    assert [p.name for p in tmp_path.iterdir()] == ["x.incomplete.json"]


def test_a_shorter_record_covers_a_longer_one_entirely(tmp_path: Path) -> None:
    # Several spans merge into one as the gaps between them fill: the record gets shorter.
    path = tmp_path / "x.incomplete.json"
    records = Records(path)
    records.replace(record(), durable=True)
    records.progress(record((0, 10), (1 << 20, 2 << 20), (100 << 20, 300 << 20)))
    records.progress(record((0, 300 << 20)))
    records.close()
    assert sidecar.read(path) == record((0, 300 << 20))


def test_progress_after_a_replace_goes_to_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    records = Records(path)
    records.replace(record(), durable=True)
    records.progress(record((0, 100)))
    records.replace(record((0, 100), validator='"v2"'), durable=True)
    records.progress(record((0, 200), validator='"v2"'))
    records.close()
    assert sidecar.read(path) == record((0, 200), validator='"v2"')


def test_a_record_too_long_for_one_page_is_still_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    records = Records(path)
    records.replace(record(), durable=True)
    many = [(i * 1000, i * 1000 + 10) for i in range(400)]  # far more than a page of JSON
    records.progress(record(*many))
    assert sidecar.read(path) == record(*many)
    records.progress(record((0, 5)))  # and back to one that fits in place
    records.close()
    assert sidecar.read(path) == record((0, 5))
    assert [p.name for p in tmp_path.iterdir()] == ["x.incomplete.json"]


def test_a_shorter_record_pads_the_file_to_the_longer_ones_length(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    records = Records(path)
    records.replace(record(), durable=True)
    records.progress(record((0, 10), (1 << 20, 2 << 20)))
    longer = path.stat().st_size
    records.progress(record((0, 2 << 20)))
    records.close()
    assert path.stat().st_size == longer  # padded with spaces, not grown
    assert path.read_bytes().rstrip(b" ").endswith(b"}\n")


def test_a_record_of_exactly_one_page_is_written_in_place(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    probe = tmp_path / "probe.json"
    base = Sidecar("o", "model.safetensors", "c" * 40, SHA, 1 << 30, None, record((0, 10)).done)
    sidecar.write(probe, base, durable=False)
    # One more character of repo name is one more byte of record.
    page = replace(base, repo="o" * (1 + 4096 - probe.stat().st_size))
    records = Records(path)
    records.replace(record(), durable=True)
    inode = path.stat().st_ino
    records.progress(page)
    records.close()
    assert path.stat().st_size == 4096
    assert path.stat().st_ino == inode  # the same file, rewritten, not replaced by a rename
    assert sidecar.read(path) == page


def test_progress_does_not_follow_a_link_planted_in_its_place(tmp_path: Path) -> None:
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("untouched")
    path = tmp_path / "x.incomplete.json"
    path.symlink_to(victim)
    records = Records(path)
    with pytest.raises(OSError):
        records.progress(record((0, 10)))
    records.close()
    assert victim.read_text() == "untouched"


def test_a_sidecar_made_by_progress_is_readable_by_all_and_writable_by_its_owner(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.incomplete.json"
    umask = os.umask(0o022)  # the common umask, so the mode asked for is the mode made
    try:
        records = Records(path)
        records.progress(record((0, 10)))
        records.close()
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "document",
    [
        '{"version": 2, "etag": 5, "size": 1}',  # an etag that is not text
        '{"version": 2, "etag": "a", "size": true}',  # a size that is not a count
        '{"version": 2, "etag": "a", "size": 5, "done": [[0, 1, 2]]}',  # a span of three
    ],
)
def test_a_record_with_a_field_of_the_wrong_kind_is_not_trusted(
    tmp_path: Path, document: str
) -> None:
    path = tmp_path / "x.incomplete.json"
    path.write_text(document)
    assert sidecar.read(path) is None


def test_a_record_without_its_names_reads_back_with_empty_ones(tmp_path: Path) -> None:
    # The names are for people looking at the cache; the etag and size decide.
    path = tmp_path / "x.incomplete.json"
    path.write_text('{"version": 2, "etag": "a", "size": 5}')
    assert sidecar.read(path) == Sidecar("", "", "", "a", 5)

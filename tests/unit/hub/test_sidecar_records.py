"""A partial's sidecar as its writer keeps it: progress records rewritten in place."""

from __future__ import annotations

from pathlib import Path

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

"""Byte ranges over several connections: the span arithmetic, the sidecar, the connection
budget, hashing the prefix as it grows, and whole fetches against the local hub (with the
size thresholds lowered so a few MiB exercise them)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.hub import connections, ranged, sidecar
from controller.hub.connections import ConnectionBudget
from controller.hub.partial import Partial
from controller.hub.ranges import (
    Span,
    content_range,
    covered,
    merged,
    missing,
    pieces,
    prefix_end,
)
from controller.hub.sidecar import Sidecar
from controller.hub.transfer import FileRef, RetryPolicy, fetch
from tests.support.hub import LocalHub

REPO = "org/big"
KIB, MIB = 1024, 1024 * 1024
DATA = random.Random(21).randbytes(3 * MIB + 4321)
SHA = hashlib.sha256(DATA).hexdigest()
FAST = RetryPolicy(attempts=6, base=0.05, cap=0.2)


def S(*pairs: tuple[int, int]) -> tuple[Span, ...]:
    return tuple(Span(a, b) for a, b in pairs)


# --------------------------------------------------------------------------- span arithmetic


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ((), ()),
        (((5, 9), (0, 5)), ((0, 9),)),  # touching spans merge
        (((0, 4), (2, 6), (8, 10)), ((0, 6), (8, 10))),  # overlapping ones too
        (((3, 3), (7, 9)), ((7, 9),)),  # empty spans vanish
    ],
)
def test_merged(spans: tuple[tuple[int, int], ...], expected: tuple[tuple[int, int], ...]) -> None:
    assert merged(S(*spans)) == S(*expected)


@pytest.mark.parametrize(
    ("done", "size", "gaps", "prefix"),
    [
        ((), 10, ((0, 10),), 0),
        (((0, 10),), 10, (), 10),
        (((0, 3), (5, 7)), 10, ((3, 5), (7, 10)), 3),
        (((2, 10),), 10, ((0, 2),), 0),
        (((0, 4), (4, 6)), 8, ((6, 8),), 6),
    ],
)
def test_missing_and_prefix(
    done: tuple[tuple[int, int], ...], size: int, gaps: tuple[tuple[int, int], ...], prefix: int
) -> None:
    spans = merged(S(*done))
    assert missing(spans, size) == S(*gaps)
    assert prefix_end(spans) == prefix
    assert covered(spans) + covered(missing(spans, size)) == size


@pytest.mark.parametrize(
    ("gaps", "piece", "expected"),
    [
        (((0, 10),), 4, ((0, 4), (4, 8), (8, 10))),
        (((3, 5), (7, 10)), 2, ((3, 5), (7, 9), (9, 10))),
        (((0, 8),), 8, ((0, 8),)),
    ],
)
def test_pieces_in_file_order(
    gaps: tuple[tuple[int, int], ...], piece: int, expected: tuple[tuple[int, int], ...]
) -> None:
    assert pieces(S(*gaps), piece) == S(*expected)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes 0-99/1000", (0, 99, 1000)),
        ("bytes 500-999/*", (500, 999, None)),
        ("bytes */1000", (None, None, 1000)),
        (None, (None, None, None)),
        ("items 0-1/2", (None, None, None)),
    ],
)
def test_content_range(header: str | None, expected: tuple[int | None, ...]) -> None:
    assert content_range(header) == expected


def test_a_span_names_its_range_header_with_an_inclusive_end() -> None:
    assert Span(100, 200).header == "bytes=100-199"
    with pytest.raises(ValueError):
        Span(5, 4)


# --------------------------------------------------------------------------- the sidecar


def record(done: tuple[Span, ...] | None = None) -> Sidecar:
    return Sidecar(REPO, "model.safetensors", "c" * 40, SHA, len(DATA), '"v"', done)


@pytest.mark.parametrize("done", [None, (), S((0, 10), (20, 30))])
@pytest.mark.parametrize("durable", [True, False])
def test_sidecar_round_trip(tmp_path: Path, done: tuple[Span, ...] | None, durable: bool) -> None:
    path = tmp_path / "x.incomplete.json"
    sidecar.write(path, record(done), durable=durable)
    assert sidecar.read(path) == record(done)
    assert [p.name for p in tmp_path.iterdir()] == ["x.incomplete.json"]  # no temp left


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        '{"version": 3, "etag": "a", "size": 1}',
        '{"version": 2, "etag": "a", "size": -1}',
        '{"version": 2, "etag": "a", "size": 5, "done": [[3, 1]]}',
        '{"version": 2, "etag": "a", "size": 5, "done": "all"}',
        "[]",
    ],
)
def test_a_sidecar_we_cannot_trust_is_none(tmp_path: Path, document: str) -> None:
    path = tmp_path / "x.incomplete.json"
    path.write_text(document)
    assert sidecar.read(path) is None


def test_a_version_1_sidecar_describes_a_prefix(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    path.write_text(json.dumps({"version": 1, "etag": SHA, "size": 9, "commit": "0" * 40}))
    found = sidecar.read(path)
    assert found is not None and found.done is None and found.describes(SHA, 9)


# --------------------------------------------------------------------------- the budget


def test_extra_connections_come_out_of_the_total_and_are_shared_fairly() -> None:
    budget = ConnectionBudget(4)
    big, small = object(), object()
    budget.first(big)
    assert [budget.extra(big) for _ in range(4)] == [True, True, True, False]
    budget.first(small)  # a file's own connection is never refused
    assert budget.open == 5 and not budget.extra(small)
    # The big file holds more than its share (4 // 2) while the budget is spent: it gives
    # back connections between pieces until it is down to its share.
    kept = []
    while not budget.keep(big):
        budget.release(big)
        kept.append(False)
    assert budget.open == 3 and kept == [False, False]
    assert budget.extra(small) and not budget.extra(small)
    assert budget.open == 4


def test_resizing_the_budget() -> None:
    budget = ConnectionBudget(1)
    holder = object()
    budget.first(holder)
    assert not budget.extra(holder)
    budget.resize(2)
    assert budget.extra(holder)
    budget.release(holder)
    budget.release(holder)
    assert budget.open == 0


# --------------------------------------------------------------------------- the partial


def blob_in(tmp_path: Path) -> Path:
    folder = tmp_path / "blobs"
    folder.mkdir()
    return folder / SHA


@pytest.mark.parametrize(
    "order",
    [
        [(0, 3 * MIB + 4321)],
        [(MIB, 2 * MIB), (0, MIB), (2 * MIB, 3 * MIB + 4321)],
        [(2 * MIB, 3 * MIB + 4321), (MIB, 2 * MIB), (0, MIB)],
    ],
)
def test_the_prefix_is_hashed_as_it_grows_whatever_the_order(
    tmp_path: Path, order: list[tuple[int, int]]
) -> None:
    partial = Partial.open_ranged(blob_in(tmp_path), record())
    buffer = memoryview(bytearray(64 * KIB))
    hashed_at = []
    for start, end in order:
        partial.write_at(start, memoryview(DATA[start:end]))
        partial.mark_done(Span(start, end))
        partial.hash_through(prefix_end(partial.done), buffer)
        hashed_at.append(partial.hashed)
    assert partial.hashed == len(DATA) and partial.digest() == SHA
    assert hashed_at == sorted(hashed_at)  # never more than the contiguous prefix
    partial.close()


def test_bytes_written_at_the_frontier_are_hashed_from_the_writers_buffer(
    tmp_path: Path,
) -> None:
    partial = Partial.open_ranged(blob_in(tmp_path), record())
    writes = [(MIB, 2 * MIB), (0, MIB // 2), (MIB // 2, MIB)]
    taken = []
    for start, end in writes:
        partial.write_at(start, memoryview(DATA[start:end]))
        taken.append(partial.hash_written(start, memoryview(DATA[start:end])))
        partial.mark_done(Span(start, end))
    # Written ahead of the frontier: left to be read back; at the frontier: hashed at once.
    assert taken == [False, True, True] and partial.hashed == MIB
    partial.hash_through(prefix_end(partial.done), memoryview(bytearray(64 * KIB)))
    assert partial.hashed == 2 * MIB
    rest = memoryview(DATA[2 * MIB :])
    partial.write_at(2 * MIB, rest)
    assert partial.hash_written(2 * MIB, rest)
    assert partial.hashed == len(DATA) and partial.digest() == SHA
    partial.close()


def test_a_ranged_partial_resumes_its_spans_and_hashes_them_once(tmp_path: Path) -> None:
    blob = blob_in(tmp_path)
    first = Partial.open_ranged(blob, record())
    for start, end in [(0, MIB), (2 * MIB, 3 * MIB)]:
        first.write_at(start, memoryview(DATA[start:end]))
        first.mark_done(Span(start, end))
    first.save()
    first.close()  # as a kill leaves it

    again = Partial.open_ranged(blob, record())
    assert again.done == S((0, MIB), (2 * MIB, 3 * MIB))
    assert again.resumed_from == 2 * MIB
    assert missing(again.done, len(DATA)) == S((MIB, 2 * MIB), (3 * MIB, len(DATA)))
    assert blob.with_name(blob.name + ".incomplete").stat().st_size == len(DATA)  # preallocated
    again.close()


def test_falling_back_keeps_the_prefix_and_drops_the_rest(tmp_path: Path) -> None:
    blob = blob_in(tmp_path)
    partial = Partial.open_ranged(blob, record())
    for start, end in [(0, MIB), (2 * MIB, 3 * MIB)]:
        partial.write_at(start, memoryview(DATA[start:end]))
        partial.mark_done(Span(start, end))
    partial.to_in_order()
    partial.write(DATA[MIB:])
    assert partial.digest() == SHA
    partial.close()
    found = sidecar.read(blob.with_name(blob.name + ".incomplete.json"))
    assert found is not None and found.done is None


def test_a_prefix_partial_is_taken_over_by_ranges(tmp_path: Path) -> None:
    blob = blob_in(tmp_path)
    grown = Partial.open(blob, record())
    grown.write(DATA[: MIB + 7])
    grown.close()
    partial = Partial.open_ranged(blob, record())
    assert partial.done == S((0, MIB + 7)) and partial.resumed_from == MIB + 7
    partial.close()


# --------------------------------------------------------------------------- whole fetches


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranged, "RANGED_ABOVE", MIB)
    monkeypatch.setattr(ranged, "PIECE_SIZE", 512 * KIB)
    monkeypatch.setattr(ranged, "RECORD_EVERY", 128 * KIB)


@pytest.fixture
def commit(hub: LocalHub) -> str:
    return hub.publish(REPO, {"model.safetensors": DATA})


def fetch_big(hub: LocalHub, cache: Path, commit: str, connections_per_file: int = 4) -> None:
    result = fetch(
        FileRef(REPO, "model.safetensors", commit, etag=SHA, size=len(DATA)),
        cache_dir=cache,
        endpoint=hub.url,
        retry=FAST,
        connections_per_file=connections_per_file,
        connection_budget=ConnectionBudget(8),
    )
    assert result.digest == SHA and result.blob.read_bytes() == DATA
    assert not [p for p in result.blob.parent.iterdir() if ".incomplete" in p.name]


def ranges_asked(hub: LocalHub) -> list[str | None]:
    return [r.range for r in hub.requests_for("*/model.safetensors", "GET")]


@pytest.mark.usefixtures("small_pieces")
def test_a_large_file_comes_as_ranges(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    fetch_big(hub, hf_cache, commit)
    asked = ranges_asked(hub)
    expected = [p.header for p in pieces(missing((), len(DATA)), 512 * KIB)]
    assert sorted(a or "" for a in asked) == sorted(expected)
    sent = sum(r.bytes_sent for r in hub.requests_for("*/model.safetensors", "GET"))
    assert sent == len(DATA)  # every byte fetched once


@pytest.mark.usefixtures("small_pieces")
def test_one_connection_per_file_when_asked(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    fetch_big(hub, hf_cache, commit, connections_per_file=1)
    assert ranges_asked(hub) == [None]


@pytest.mark.usefixtures("small_pieces")
def test_a_dropped_range_is_resumed_where_it_stopped(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.drop("*/model.safetensors", after_bytes=100_000, times=2)
    fetch_big(hub, hf_cache, commit)
    sent = sum(r.bytes_sent for r in hub.requests_for("*/model.safetensors", "GET"))
    assert sent == len(DATA)


FALLBACKS: dict[str, Callable[[LocalHub], None]] = {
    "ignored": lambda hub: hub.faults.ignore_range("*/model.safetensors"),
    "403": lambda hub: hub.faults.fail("*/model.safetensors", 403, method="GET"),
    "416": lambda hub: hub.faults.fail("*/model.safetensors", 416, method="GET"),
    "429": lambda hub: hub.faults.fail("*/model.safetensors", 429, method="GET"),
    "etag": lambda hub: hub.faults.change_etag("*/model.safetensors"),
}


@pytest.mark.usefixtures("small_pieces")
@pytest.mark.parametrize("fault", sorted(FALLBACKS))
def test_a_hub_that_will_not_serve_ranges_gets_one_connection(
    hub: LocalHub, hf_cache: Path, commit: str, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    FALLBACKS[fault](hub)
    with caplog.at_level(logging.WARNING, "modelsync.transfer"):
        fetch_big(hub, hf_cache, commit)
    notes = [r.getMessage() for r in caplog.records if "over one connection" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0]
    last = hub.requests_for("*/model.safetensors", "GET")[-1]
    assert last.status in (200, 206) and not (last.range or "").count(",")
    assert last.range is None or last.range.endswith("-")  # the rest, in one GET


def test_the_shared_budget_follows_the_workspace() -> None:
    assert connections.SHARED.total >= 1

"""The byte path at its edges, against the local hub: partials an earlier run left in every
shape (full, too long, shorter than their record, a planted link), progress as a download
advances, the bandwidth limit and a stop over several connections, a file another writer
finishes first, the hub's Retry-After in both its forms, and the token bucket's arithmetic.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from filelock import FileLock

from controller.domain import Reason
from controller.hub import ranged
from controller.hub.connections import ConnectionBudget
from controller.hub.revisions import HubError
from controller.hub.transfer import (
    CHUNK_SIZE,
    PROGRESS_EVERY,
    Fetched,
    FileRef,
    RetryPolicy,
    TokenBucket,
    _retry_after,
    fetch,
)
from controller.hub.watchdog import SpeedFloor
from controller.system.cancel import Cancelled, StopSignal
from controller.system.clock import utcnow
from tests.support.cli import wait_until
from tests.support.hub import LocalHub

REPO = "org/edges"
KIB, MIB = 1024, 1024 * 1024
DATA = random.Random(41).randbytes(3 * MIB + 4321)
SHA = hashlib.sha256(DATA).hexdigest()
SMALL = random.Random(42).randbytes(200_000)
SMALL_SHA = hashlib.sha256(SMALL).hexdigest()
FAST = RetryPolicy(attempts=6, base=0.05, cap=0.2)


@pytest.fixture
def commit(hub: LocalHub) -> str:
    return hub.publish(REPO, {"model.safetensors": DATA, "small.safetensors": SMALL})


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges from 1 MiB on, in pieces of 512 KiB: a few MiB exercise several connections."""
    monkeypatch.setattr(ranged, "RANGED_ABOVE", MIB)
    monkeypatch.setattr(ranged, "PIECE_SIZE", 512 * KIB)
    monkeypatch.setattr(ranged, "RECORD_EVERY", 128 * KIB)


def big(commit: str) -> FileRef:
    return FileRef(REPO, "model.safetensors", commit, etag=SHA, size=len(DATA))


def small(commit: str) -> FileRef:
    return FileRef(REPO, "small.safetensors", commit, etag=SMALL_SHA, size=len(SMALL))


def do_fetch(hub: LocalHub, cache: Path, ref: FileRef, **settings: object) -> Fetched:
    settings.setdefault("retry", FAST)
    return fetch(ref, cache_dir=cache, endpoint=hub.url, **settings)  # type: ignore[arg-type]


def blobs(cache: Path) -> Path:
    return cache / "models--org--edges" / "blobs"


def gets(hub: LocalHub, name: str = "model.safetensors") -> list[tuple[int, str | None, int]]:
    return [(r.status, r.range, r.bytes_sent) for r in hub.requests_for(f"*/{name}", "GET")]


def leave_partial(cache: Path, data: bytes, record: dict[str, object] | None = None) -> Path:
    """The stable partial of DATA and its sidecar, as a killed process leaves them."""
    folder = blobs(cache)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{SHA}.incomplete"
    partial.write_bytes(data)
    document = {"version": 2, "etag": SHA, "size": len(DATA), **(record or {})}
    (folder / f"{SHA}.incomplete.json").write_text(json.dumps(document))
    return partial


def assert_published(fetched: Fetched, data: bytes = DATA) -> None:
    assert fetched.blob.read_bytes() == data and fetched.snapshot.read_bytes() == data
    assert not [p.name for p in fetched.blob.parent.iterdir() if ".incomplete" in p.name]


# --------------------------------------------------------------------------- partials on disk


def test_a_partial_holding_the_whole_file_is_published_without_a_get(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    leave_partial(hf_cache, DATA)

    fetched = do_fetch(hub, hf_cache, big(commit))

    assert gets(hub) == []
    assert fetched.digest == SHA and fetched.resumed_from == len(DATA)
    assert fetched.transferred == 0
    assert_published(fetched)


def test_a_partial_longer_than_the_file_is_fetched_again_from_byte_0(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    leave_partial(hf_cache, DATA + b"tail")

    fetched = do_fetch(hub, hf_cache, big(commit))

    assert gets(hub) == [(200, None, len(DATA))]
    assert fetched.resumed_from == 0 and fetched.digest == SHA
    assert_published(fetched)


def test_a_partial_shorter_than_its_record_resumes_from_the_bytes_it_holds(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    # The record says 2 MiB were written as ranges; only 1 MiB reached the file.
    leave_partial(hf_cache, DATA[:MIB], {"done": [[0, 2 * MIB]]})

    fetched = do_fetch(hub, hf_cache, big(commit))

    assert gets(hub) == [(206, f"bytes={MIB}-", len(DATA) - MIB)]
    assert fetched.resumed_from == MIB and fetched.digest == SHA
    assert_published(fetched)


def test_a_ranged_partial_resumes_from_its_contiguous_prefix_over_one_connection(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    # Spans written by several connections; continued over one, only the prefix is kept.
    data = bytearray(DATA)
    data[2 * MIB : 3 * MIB] = bytes(MIB)  # never written: a hole of the preallocated file
    leave_partial(hf_cache, bytes(data), {"done": [[0, MIB], [3 * MIB, len(DATA)]]})

    fetched = do_fetch(hub, hf_cache, big(commit))

    assert gets(hub) == [(206, f"bytes={MIB}-", len(DATA) - MIB)]
    assert fetched.resumed_from == MIB
    assert_published(fetched)


def test_a_link_planted_at_the_partials_name_is_not_written_through(
    hub: LocalHub, hf_cache: Path, commit: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"not the cache's to write")
    leave_partial(hf_cache, b"")
    partial = blobs(hf_cache) / f"{SHA}.incomplete"
    partial.unlink()
    partial.symlink_to(elsewhere)

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, big(commit))

    assert not caught.value.transient
    assert "cannot write to the cache" in caught.value.message
    assert elsewhere.read_bytes() == b"not the cache's to write"
    assert not (blobs(hf_cache) / SHA).exists()
    assert gets(hub) == []


# --------------------------------------------------------------------------- progress


def progress_of(
    hub: LocalHub, cache: Path, ref: FileRef, **settings: object
) -> list[tuple[int, int]]:
    told: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            told.append((done, total))

    do_fetch(hub, cache, ref, progress=progress, **settings)
    return told


def test_progress_over_one_connection_starts_at_the_prefix_and_ends_at_the_size(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    leave_partial(hf_cache, DATA[:MIB])

    told = progress_of(hub, hf_cache, big(commit))

    assert told[0] == (MIB, len(DATA)) and told[-1] == (len(DATA), len(DATA))
    assert all(total == len(DATA) for _, total in told)
    done = [d for d, _ in told]
    assert done == sorted(done)
    # At least every PROGRESS_EVERY bytes, and not per chunk.
    assert all(b - a <= PROGRESS_EVERY + CHUNK_SIZE for a, b in zip(done, done[1:], strict=False))
    assert len(told) <= (len(DATA) - MIB) // PROGRESS_EVERY + 3


def test_progress_of_a_small_file_fetched_whole(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    told = progress_of(hub, hf_cache, small(commit), private_small_files=True)

    assert told[0] == (0, len(SMALL)) and told[-1] == (len(SMALL), len(SMALL))


def test_progress_of_a_larger_file_fetched_whole_names_its_size_throughout(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    told = progress_of(hub, hf_cache, big(commit), private_small_files=True)

    assert told[0] == (0, len(DATA)) and told[-1] == (len(DATA), len(DATA))
    assert len(told) > 3 and all(total == len(DATA) for _, total in told)
    assert len(hub.requests_for("*/model.safetensors", "HEAD")) == 0  # fetched whole


def test_a_trickling_small_file_is_cut_naming_the_file(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.throttle("*/small.safetensors", 1000, times=None)

    with pytest.raises(HubError) as caught:
        do_fetch(
            hub,
            hf_cache,
            small(commit),
            private_small_files=True,
            retry=RetryPolicy(attempts=1),
            speed_floor=SpeedFloor(bytes_per_second=100_000, window=0.5),
        )

    assert caught.value.transient
    assert caught.value.message.startswith(f"{REPO}@{commit[:12]}:small.safetensors: ")
    assert "below the floor of" in caught.value.message


def test_progress_of_a_cached_blob_is_its_size(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    do_fetch(hub, hf_cache, big(commit))

    assert progress_of(hub, hf_cache, big(commit)) == [(len(DATA), len(DATA))]


@pytest.mark.usefixtures("small_pieces")
def test_progress_over_several_connections(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    told = progress_of(
        hub, hf_cache, big(commit), connections_per_file=4, connection_budget=ConnectionBudget(8)
    )

    assert told[0] == (0, len(DATA)) and told[-1] == (len(DATA), len(DATA))
    assert all(total == len(DATA) for _, total in told)
    assert len(told) > 2  # told as the pieces land, not only at the start and the end


# --------------------------------------------------------------------------- several connections


@pytest.mark.usefixtures("small_pieces")
def test_the_bandwidth_limit_holds_over_several_connections(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    rate = 4 * MIB
    started = time.monotonic()

    fetched = do_fetch(
        hub,
        hf_cache,
        big(commit),
        limiter=TokenBucket(rate),
        connections_per_file=4,
        connection_budget=ConnectionBudget(8),
    )

    # Four connections share one bucket: together they take at least size / rate.
    assert time.monotonic() - started >= (len(DATA) - rate // 10) / rate
    assert len(gets(hub)) > 1
    assert_published(fetched)


@pytest.mark.usefixtures("small_pieces")
def test_a_stop_during_a_ranged_download_keeps_what_arrived(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    held = hub.faults.hold("*/model.safetensors", after_bytes=256 * KIB, times=None)
    signal = StopSignal()
    raised: list[BaseException] = []

    def download() -> None:
        try:
            do_fetch(
                hub,
                hf_cache,
                big(commit),
                stop=signal.for_model(REPO),
                connections_per_file=4,
                connection_budget=ConnectionBudget(8),
            )
        except BaseException as e:
            raised.append(e)

    worker = threading.Thread(target=download, daemon=True)
    worker.start()
    assert held.reached.wait(10)  # a piece is half sent, and held there
    # ... and written: a progress record covers some of it (every RECORD_EVERY bytes).
    wait_until(lambda: any(start == 0 for start, _ in recorded_spans(hf_cache)), "a span")
    signal.stop_model(REPO)
    worker.join(timeout=30)
    held.release()

    assert not worker.is_alive()
    assert [type(e) for e in raised] == [Cancelled]
    assert not (blobs(hf_cache) / SHA).exists()
    record = json.loads((blobs(hf_cache) / f"{SHA}.incomplete.json").read_text())
    assert record["etag"] == SHA and record["size"] == len(DATA)
    (kept,) = [end for start, end in record["done"] if start == 0]  # what arrived, on record
    assert kept > 0

    hub.faults.clear()
    hub.clear_requests()
    fetched = do_fetch(hub, hf_cache, big(commit))
    assert fetched.digest == SHA and fetched.resumed_from == kept
    assert sum(sent for _, _, sent in gets(hub)) == len(DATA) - kept
    assert_published(fetched)


def recorded_spans(cache: Path) -> list[list[int]]:
    try:
        record = json.loads((blobs(cache) / f"{SHA}.incomplete.json").read_text())
    except (OSError, ValueError):  # not written yet
        return []
    return list(record.get("done") or [])


# --------------------------------------------------------------------------- another writer


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_file_another_writer_finished_meanwhile_is_linked_not_fetched(
    hub: LocalHub, hf_cache: Path, commit: str, whole: bool
) -> None:
    locks = hf_cache / ".locks" / "models--org--edges"
    locks.mkdir(parents=True)
    results: list[Fetched] = []
    told: list[tuple[int, int]] = []
    with FileLock(locks / f"{SMALL_SHA}.lock", mode=0o664):  # hf_hub_download holds it
        worker = threading.Thread(
            target=lambda: results.append(
                do_fetch(
                    hub,
                    hf_cache,
                    small(commit),
                    private_small_files=whole,
                    progress=lambda d, t: told.append((d, t)),
                )
            ),
            daemon=True,
        )
        worker.start()
        wait_until(lambda: blobs(hf_cache).is_dir(), "blobs/")  # past the first look for it
        (blobs(hf_cache) / SMALL_SHA).write_bytes(SMALL)  # ... and publishes the blob
    worker.join(timeout=30)

    (fetched,) = results
    snapshot = hf_cache / "models--org--edges" / "snapshots" / commit / "small.safetensors"
    assert fetched == Fetched(snapshot, blobs(hf_cache) / SMALL_SHA, SMALL_SHA, None, 0, 0)
    assert snapshot.read_bytes() == SMALL
    assert told[-1] == (len(SMALL), len(SMALL))
    assert gets(hub, "small.safetensors") == []


def test_a_stop_cuts_a_small_file_held_by_the_hub(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    held = hub.faults.hold("*/small.safetensors", after_bytes=64 * KIB)
    signal = StopSignal()
    raised: list[BaseException] = []

    def download() -> None:
        try:
            do_fetch(
                hub, hf_cache, small(commit), private_small_files=True, stop=signal.for_model(REPO)
            )
        except BaseException as e:
            raised.append(e)

    worker = threading.Thread(target=download, daemon=True)
    worker.start()
    assert held.reached.wait(10)
    started = time.monotonic()
    signal.stop_model(REPO)
    worker.join(timeout=20)

    assert not worker.is_alive() and time.monotonic() - started < 15  # not the read timeout
    assert [type(e) for e in raised] == [Cancelled]
    assert not (blobs(hf_cache) / SMALL_SHA).exists()


# --------------------------------------------------------------------------- Retry-After


def http_date(seconds_from_now: float) -> str:
    return email.utils.format_datetime(utcnow() + timedelta(seconds=seconds_from_now), usegmt=True)


def test_a_retry_after_as_an_http_date_is_waited_for(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.fail("*/model.safetensors", 503, method="GET", headers={"Retry-After": http_date(3)})
    started = time.monotonic()

    fetched = do_fetch(hub, hf_cache, big(commit))

    # FAST backs off at most 0.2 s; a date 3 s ahead (to the second) explains a 1.5 s wait.
    assert time.monotonic() - started >= 1.5
    assert [s for s, _, _ in gets(hub)] == [503, 200]
    assert_published(fetched)


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("120", 120.0, 120.0),
        (" 7 ", 7.0, 7.0),
        ("", None, None),
        ("soon", None, None),
        ("-5", None, None),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0, 0.0),  # a date past: no wait
    ],
)
def test_retry_after_values(header: str, low: float | None, high: float | None) -> None:
    found = _retry_after(header)
    if low is None:
        assert found is None
    else:
        assert found is not None and low <= found <= high  # type: ignore[operator]


@pytest.mark.parametrize("zone", ["GMT", "-0000", "+0100"])
def test_retry_after_dates_count_from_now(zone: str) -> None:
    when = utcnow() + timedelta(seconds=100)
    if zone == "+0100":
        when += timedelta(hours=1)
    stamp = when.strftime("%a, %d %b %Y %H:%M:%S ") + zone

    found = _retry_after(stamp)

    assert found is not None and 97.0 <= found <= 100.0


# --------------------------------------------------------------------------- token bucket


@pytest.mark.parametrize("rate", [0, -1])
def test_a_bucket_needs_a_positive_rate(rate: int) -> None:
    with pytest.raises(ValueError, match=f"^a bandwidth limit must be positive, got {rate}$"):
        TokenBucket(rate)


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [(1000, None, 100), (1005, None, 100), (5, None, 1), (1000, 0, 1), (1000, 7, 7)],
)
def test_a_bucket_holds_at_most_its_burst(rate: int, burst: int | None, expected: int) -> None:
    assert TokenBucket(rate, burst=burst).burst == expected


@pytest.mark.parametrize(
    ("rate", "chunk"),
    [
        (1, 16 * KIB),
        (8 * 16 * KIB, 16 * KIB),
        (8 * 100 * KIB, 100 * KIB),
        (8 * 100 * KIB + 5, 100 * KIB),  # whole bytes
        (10**12, CHUNK_SIZE),
    ],
)
def test_a_buckets_reads_are_an_eighth_of_a_second_within_bounds(rate: int, chunk: int) -> None:
    assert TokenBucket(rate).chunk_size() == chunk


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def test_a_bucket_starts_empty_and_makes_each_taker_wait_its_share() -> None:
    bucket = TokenBucket(100_000, burst=1)

    first = timed(lambda: bucket.take(30_000))  # 0.3 s of the rate, from an empty bucket
    second = timed(lambda: bucket.take(20_000))  # queued behind the first: 0.2 s more

    assert first >= 0.29 and second >= 0.19
    assert first < 3.0 and second < 3.0  # seconds, not the rate's inverse in minutes


def test_the_first_byte_is_paid_for() -> None:
    bucket = TokenBucket(2, burst=1)

    assert timed(lambda: bucket.take(1)) >= 0.45  # half a second at 2 bytes a second


def test_an_idle_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(1_000_000, burst=1_000_000)
    time.sleep(0.5)  # idle: half a second of the rate accrues

    assert timed(lambda: bucket.take(400_000)) < 0.25  # taken from what accrued, no wait


def test_an_idle_bucket_refills_only_up_to_its_burst() -> None:
    bucket = TokenBucket(1_000_000, burst=100_000)
    time.sleep(0.3)  # idle: would be 300,000 tokens without the burst's bound

    # The burst covers 100,000 bytes; the other 200,000 are waited for at the rate.
    assert timed(lambda: bucket.take(300_000)) >= 0.19


def test_a_bucket_is_fair_to_threads_taking_together() -> None:
    bucket = TokenBucket(200_000, burst=1)
    threads = [threading.Thread(target=bucket.take, args=(20_000,)) for _ in range(5)]

    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert time.monotonic() - started >= 0.49  # 100,000 bytes at 200,000 a second


# --------------------------------------------------------------------------- a small file's bytes


def test_a_small_file_fetched_whole_says_what_it_fetched(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    fetched = do_fetch(hub, hf_cache, small(commit), private_small_files=True)

    snapshot = hf_cache / "models--org--edges" / "snapshots" / commit / "small.safetensors"
    blob = blobs(hf_cache) / SMALL_SHA
    assert fetched == Fetched(snapshot, blob, SMALL_SHA, SMALL_SHA, len(SMALL), 0)
    assert_published(fetched, SMALL)


def test_a_small_file_with_a_damaged_byte_is_refused_naming_both_digests(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.corrupt("*/small.safetensors", offset=1000)
    damaged = bytearray(SMALL)
    damaged[1000] ^= 0xFF

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, small(commit), private_small_files=True)

    assert caught.value.reason is Reason.CHECKSUM_MISMATCH and caught.value.transient is False
    assert caught.value.message == (
        f"small.safetensors: downloaded content hashes to "
        f"{hashlib.sha256(damaged).hexdigest()[:16]}…, the hub says {SMALL_SHA[:16]}…; "
        "the download was discarded"
    )
    assert not [p.name for p in blobs(hf_cache).iterdir()]  # nothing kept, nothing published

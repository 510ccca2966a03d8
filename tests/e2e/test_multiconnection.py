"""A large file over several connections, end to end: the real CLI against the local hub.

The file is just above the size from which modelsync fetches byte ranges; the hub's request
log shows what was asked (``Range``) and how many body bytes went out.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.hub import ranged
from controller.hub.ranges import Span, covered, merged
from tests.support.cli import DEADLINE_S, Workdir
from tests.support.hub import LocalHub

MIB = 1024 * 1024
SIZE = ranged.RANGED_ABOVE + 16 * MIB
CONNECTIONS = 4
FILE = "model.safetensors"
CONFIG = b'{"model_type": "big"}\n'


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Random bytes (a piece written at a wrong offset can never hash right), and their sha256."""
    path = tmp_path_factory.mktemp("big") / FILE
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(SIZE // (8 * MIB)):
            chunk = os.urandom(8 * MIB)
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub, big_file: tuple[Path, str]) -> Workdir:
    hub.publish("org/big", {FILE: big_file[0], "config.json": CONFIG})
    workdir = Workdir(tmp_path / "work", hub.url)
    workdir.write_manifest(
        [{"name": "big", "repo": "org/big"}],
        downloads={"connections_per_file": CONNECTIONS},
    )
    return workdir


def blob_sha(work: Workdir, sha: str) -> str:
    blob = work.cache / "models--org--big" / "blobs" / sha
    digest = hashlib.sha256()
    with blob.open("rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def assert_available(work: Workdir, sha: str) -> None:
    assert blob_sha(work, sha) == sha
    status = work.model_status("big")
    assert status["phase"] == "AVAILABLE" and status["reason"] == "Verified"
    assert not list((work.cache / "models--org--big" / "blobs").glob("*.incomplete*"))


def test_a_large_file_comes_over_several_concurrent_ranges(
    work: Workdir, hub: LocalHub, big_file: tuple[Path, str]
) -> None:
    # Each response is capped, as a CDN caps each connection: several at once beat one.
    hub.faults.throttle(f"*/{FILE}", 10 * MIB, times=None)
    started = time.monotonic()
    run = work.reconcile("--apply")
    wall = time.monotonic() - started

    assert run.code == 0, run.out + run.err
    assert_available(work, big_file[1])
    gets = hub.requests_for(f"*/{FILE}", "GET")
    assert len(gets) >= CONNECTIONS and all(r.status == 206 and r.range for r in gets)
    asked = merged(Span(int(a), int(b) + 1) for a, b in (r.range[6:].split("-") for r in gets))  # type: ignore[index]
    assert asked == (Span(0, SIZE),) and sum(r.bytes_sent for r in gets) == SIZE
    # The GETs overlapped in time: together they took far longer than the whole run
    # (one after the other, at 10 MiB/s each, they would take eight seconds).
    assert sum(r.seconds for r in gets) > 1.5 * wall


FALLBACKS: dict[str, Callable[[LocalHub], None]] = {
    "range ignored": lambda hub: hub.faults.ignore_range(f"*/{FILE}"),
    "403": lambda hub: hub.faults.fail(f"*/{FILE}", 403, method="GET"),
    "416": lambda hub: hub.faults.fail(f"*/{FILE}", 416, method="GET"),
    "429": lambda hub: hub.faults.fail(f"*/{FILE}", 429, method="GET"),
    "etag changed": lambda hub: hub.faults.change_etag(f"*/{FILE}"),
}


@pytest.mark.parametrize("fault", sorted(FALLBACKS))
def test_a_hub_that_will_not_serve_parallel_ranges_gets_one_connection(
    work: Workdir, hub: LocalHub, big_file: tuple[Path, str], fault: str
) -> None:
    FALLBACKS[fault](hub)
    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    assert_available(work, big_file[1])
    notes = [line for line in run.err.splitlines() if "over one connection" in line]
    assert len(notes) == 1, run.err
    assert hub.faults.pending == 0  # the fault did fire
    # After the note, one GET fetches the rest from the contiguous prefix on.
    last = hub.requests_for(f"*/{FILE}", "GET")[-1]
    assert last.range is None or last.range.endswith("-")


def done_on_record(sidecar: Path) -> int:
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return 0
    spans = record.get("done") or []
    return covered(merged(Span(a, b) for a, b in spans))


def test_kill_9_mid_download_resumes_every_connection(
    work: Workdir, hub: LocalHub, big_file: tuple[Path, str]
) -> None:
    sha = big_file[1]
    rate = 8 * MIB  # per response: slow enough that the kill lands mid-transfer
    hub.faults.throttle(f"*/{FILE}", rate, times=None)
    sidecar = work.cache / "models--org--big" / "blobs" / f"{sha}.incomplete.json"

    proc = work.start("--apply")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while done_on_record(sidecar) < CONNECTIONS * ranged.RECORD_EVERY:
            assert proc.poll() is None, f"reconcile exited with {proc.returncode} early"
            assert time.monotonic() < deadline, "gave up waiting for partial progress"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    first = hub.requests_for(f"*/{FILE}", "GET")
    assert len(first) >= 2 and all(r.range for r in first)  # killed mid-way, over ranges
    assert sum(r.bytes_sent for r in first) < SIZE * 3 // 4  # with most of the file to go

    hub.faults.clear()
    hub.clear_requests()
    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    assert_available(work, sha)
    again = hub.requests_for(f"*/{FILE}", "GET")
    assert again and all(r.status == 206 and r.range for r in again)
    fetched = sum(r.bytes_sent for r in first + again)
    # At most one chunk per connection is fetched twice (the bytes written after its last
    # record), plus what the hub had pushed into the socket that the killed client never
    # read (a tenth of a second at the throttled rate).
    allowance = CONNECTIONS * (ranged.RECORD_EVERY + rate // 10)
    assert SIZE <= fetched <= SIZE + allowance, (fetched - SIZE, allowance)
    print(f"re-fetched {fetched - SIZE} bytes over {len(first)} + {len(again)} GETs")


def test_one_connection_per_file_is_a_plain_get(
    tmp_path: Path, hub: LocalHub, big_file: tuple[Path, str]
) -> None:
    hub.publish("org/big", {FILE: big_file[0], "config.json": CONFIG})
    work = Workdir(tmp_path / "one", hub.url)
    work.write_manifest([{"name": "big", "repo": "org/big"}], downloads={"connections_per_file": 1})
    run = work.reconcile("--apply")
    assert run.code == 0, run.out + run.err
    assert [r.range for r in hub.requests_for(f"*/{FILE}", "GET")] == [None]
    assert_available(work, big_file[1])

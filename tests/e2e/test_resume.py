"""Crashes and network faults end to end: the real CLI in a subprocess, a real hub over HTTP.

The kill tests make the kill deterministic with the hub's ``hold`` fault: the server sends
exactly N bytes of the file, then holds the response; the test waits until the client has
written them to its partial file, kills the process with SIGKILL, and runs it again.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir

from controller.hub.transfer import CHUNK_SIZE, DEFAULT_RETRY
from tests.support.cli import DEADLINE_S, Workdir
from tests.support.hub import LocalHub

MIB = 1024 * 1024
BIG_SIZE = 64 * MIB
CONFIG = b'{"model_type": "big"}\n'
SMALL = b"\x07" * 300_000
TOKEN = "hf_" + "Jm4Rt8WcQ2xYv6LpN9bKd3Hs7Fg5ZaE1uT"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """64 MiB of random bytes (a wrong offset can never hash right) and their sha256."""
    path = tmp_path_factory.mktemp("big") / "model.safetensors"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(BIG_SIZE // (8 * MIB)):
            chunk = os.urandom(8 * MIB)
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def wait_for(condition: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert proc.poll() is None, f"reconcile exited with {proc.returncode} before {what}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def range_start(header: str | None) -> int:
    assert header is not None and header.startswith("bytes=")
    return int(header.removeprefix("bytes=").split("-")[0])


@pytest.mark.parametrize("fraction", [0.25, 0.60, 0.90])
def test_kill_mid_file_resumes_where_the_bytes_on_disk_end(
    tmp_path: Path, hub: LocalHub, big_file: tuple[Path, str], fraction: float
) -> None:
    source, sha = big_file
    hub.publish("org/big", {"model.safetensors": source, "config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "big", "repo": "org/big"}])
    partial = work.cache / "models--org--big" / "blobs" / f"{sha}.incomplete"
    held_at = int(BIG_SIZE * fraction)
    hold = hub.faults.hold("*/model.safetensors", after_bytes=held_at)

    proc = work.start("--apply")
    try:
        wait_for(hold.reached.is_set, "the hub to send the first bytes", proc)
        # Bytes still inside the client's read buffer are allowed to be lost: one chunk.
        wait_for(lambda: size_of(partial) >= held_at - CHUNK_SIZE, "bytes on disk", proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        hold.release()
    on_disk = partial.stat().st_size
    incomplete = scan_cache_dir(work.cache).incomplete_files  # hf's own tools see the partial
    assert [p.file_path.name for p in incomplete] == [partial.name]

    hub.wait_for_requests("*/model.safetensors", "GET")  # the killed GET, once released
    hub.clear_requests()
    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    gets = hub.requests_for("*/model.safetensors", "GET")
    assert len(gets) == 1, gets
    resumed = gets[0]
    start = range_start(resumed.range)
    assert resumed.status == 206 and start >= on_disk
    refetched = held_at - start  # bytes the hub had sent before the kill and sent again
    assert refetched <= BIG_SIZE // 100 + 16 * MIB
    assert resumed.bytes_sent == BIG_SIZE - start
    status = work.model_status("big")
    assert status["phase"] == "AVAILABLE" and status["reason"] == "Verified"
    blob = Path(
        hf_hub_download("org/big", "model.safetensors", cache_dir=work.cache, local_files_only=True)
    ).resolve()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha == blob.name
    assert not list((work.cache / "models--org--big" / "blobs").glob("*.incomplete*"))
    print(
        f"kill at {fraction:.0%}: {on_disk} bytes on disk, resumed at {start}, "
        f"re-fetched {refetched} bytes"
    )


def test_persistently_failing_model_fails_alone_then_converges(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish("org/bad", {"model.safetensors": SMALL, "config.json": CONFIG})
    hub.publish("org/good", {"model.safetensors": SMALL[::-1], "config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(
        [
            {"name": "bad", "repo": "org/bad", "priority": "critical"},
            {"name": "good", "repo": "org/good"},
        ]
    )
    # Retry-After: 0 keeps the test fast; the retries themselves still all happen.
    hub.faults.fail("/org/bad/resolve/*/model.safetensors", 503, retry_after=0, times=None)

    run = work.reconcile("--apply")

    assert run.code == 1
    bad = work.model_status("bad")
    assert bad["phase"] == "FAILED" and bad["reason"] == "DownloadFailed"
    assert "model.safetensors" in bad["message"] and "HTTP 503" in bad["message"]
    assert f"{DEFAULT_RETRY.attempts} attempts" in bad["message"]
    attempts = hub.requests_for("/org/bad/resolve/*/model.safetensors")
    assert [r.status for r in attempts] == [503] * DEFAULT_RETRY.attempts
    assert work.model_status("good")["phase"] == "AVAILABLE"

    hub.faults.clear()
    again = work.reconcile("--apply")
    assert again.code == 0, again.out + again.err
    assert {m["name"]: m["phase"] for m in work.status()["models"]} == {
        "bad": "AVAILABLE",
        "good": "AVAILABLE",
    }


def test_token_never_reaches_output_status_or_database(tmp_path: Path, hub: LocalHub) -> None:
    hub.publish("org/private", {"model.safetensors": SMALL, "config.json": CONFIG})
    hub.publish("org/flaky", {"model.safetensors": SMALL[::-1], "config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(
        [{"name": "private", "repo": "org/private"}, {"name": "flaky", "repo": "org/flaky"}]
    )
    # Servers and proxies that echo the credentials they were sent back into their errors.
    echo = {"X-Error-Message": f"rejected Authorization: Bearer {TOKEN}"}
    hub.faults.fail("/org/private/resolve/*", 401, headers=echo, times=None)
    hub.faults.fail("/org/flaky/resolve/*", 500, headers=echo, retry_after=0, times=None)
    # Send the token (the test suite disables implicit tokens elsewhere).
    env = {"HF_TOKEN": TOKEN, "HF_HUB_DISABLE_IMPLICIT_TOKEN": "0"}

    run = work.reconcile("--apply", env=env)
    shown = work.reconcile("status", "--json", env=env)

    assert run.code == 1
    assert work.model_status("private")["reason"] == "AccessDenied"
    assert "hf auth login" in work.model_status("private")["message"]
    assert "***" in work.model_status("flaky")["message"]  # the echo was there, redacted
    state_files = [p.read_bytes() for p in work.state.iterdir() if p.is_file()]
    with sqlite3.connect(work.state / "modelsync.db") as db:
        messages = " ".join(m for (m,) in db.execute("SELECT message FROM downloads"))
    assert "HTTP 500" in messages
    for text in (run.out, run.err, shown.out, shown.err, messages):
        assert TOKEN not in text and TOKEN[3:] not in text
    for data in state_files:
        assert TOKEN.encode() not in data and TOKEN[3:].encode() not in data


def test_manifest_bandwidth_limit_is_shared_by_parallel_downloads(
    tmp_path: Path, hub: LocalHub
) -> None:
    shards = {f"model-{i}.safetensors": os.urandom(2_000_000) for i in range(2)}
    hub.publish("org/sharded", {**shards, "config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(
        [{"name": "sharded", "repo": "org/sharded"}],
        downloads={"concurrency": 2, "max_bandwidth": "4MB/s"},
    )

    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    assert work.model_status("sharded")["phase"] == "AVAILABLE"
    with sqlite3.connect(work.state / "modelsync.db") as db:
        rows = dict(db.execute("SELECT path, seconds FROM downloads WHERE outcome = 'ok'"))
    # 4 MB at 4 MB/s overall: the shards share the limit, so the last one ends after about
    # a second (alone, each would take half that).
    assert max(rows[name] for name in shards) >= 0.85


def _read_position(pid: int, path: Path) -> int | None:
    """How far process ``pid`` has read into ``path``; None while it does not have it open."""
    target = str(path)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                return int(info.split("pos:", 1)[1].split()[0])
        except OSError:
            continue  # closed since the listing
    return None


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="reads /proc")
def test_ctrl_c_during_verify_full_stops_mid_file_and_records_nothing(
    tmp_path: Path, hub: LocalHub
) -> None:
    content = os.urandom(256 * MIB)  # a hash long enough to be caught in the middle
    hub.publish("org/big", {"config.json": CONFIG, "model.safetensors": content})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "big", "repo": "org/big"}])
    assert work.reconcile("--apply").code == 0
    blob = Path(
        hf_hub_download("org/big", "model.safetensors", cache_dir=work.cache, local_files_only=True)
    ).resolve()

    def recorded() -> tuple[object, ...]:
        db = sqlite3.connect(work.state / "modelsync.db")
        try:
            return tuple(db.execute("SELECT * FROM verifications WHERE blob = ?", (blob.name,)))
        finally:
            db.close()

    before = recorded()
    proc = work.start("verify", "--full")
    try:
        wait_for(
            lambda: (_read_position(proc.pid, blob) or 0) > 0, "the hash to be under way", proc
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=DEADLINE_S) == 130
    finally:
        proc.kill()
    assert before and recorded() == before  # cut short: neither re-dated nor marked damaged

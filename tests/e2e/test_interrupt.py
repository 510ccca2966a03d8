"""Ctrl-C during ``reconcile --apply`` against a slow hub: the real CLI in a subprocess.

The hub sends the weights slowly (``Faults.throttle``), so the client spends its time blocked
in reads, as it does on a slow link; Ctrl-C must still end the apply within about a second,
keep the partial file, and leave a status that says the model was interrupted.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import DEADLINE_S, Workdir
from tests.support.hub import LocalHub

MIB = 1024 * 1024
CONTENT = os.urandom(8 * MIB)  # random: a resume at a wrong offset can never hash right
SHA = hashlib.sha256(CONTENT).hexdigest()
CONFIG = b'{"model_type": "slow"}\n'
RATE = 200_000  # bytes a second: the 8 MiB would take 40 s
# Longest an interrupted apply may take to exit after the signal: far below the 30 s read
# timeout a blocked read would wait out and the 40 s the body would take, with room for a
# machine whose cores are busy with other work (a stop takes well under a second when idle).
EXIT_WITHIN_S = 5.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def _exit_code_within(proc: subprocess.Popen[bytes], seconds: float) -> int | None:
    """The exit code of ``proc`` if it exits within ``seconds``, else None."""
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_stops_an_apply_at_once_and_the_next_apply_resumes(
    tmp_path: Path, hub: LocalHub, signals: int
) -> None:
    hub.publish("org/slow", {"config.json": CONFIG, "model.safetensors": CONTENT})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "slow", "repo": "org/slow"}])
    partial = work.cache / "models--org--slow" / "blobs" / f"{SHA}.incomplete"
    hub.faults.throttle("*/model.safetensors", RATE)
    log = tmp_path / "apply.log"

    proc = work.start("--apply", log=log)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while _size(partial) < RATE:  # a second's worth of bytes on disk
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "gave up waiting for bytes on disk"
            time.sleep(0.02)
        signalled = time.monotonic()
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
        code = _exit_code_within(proc, EXIT_WITHIN_S)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
        proc.wait()
    output = log.read_text()
    assert code == 130, f"exit {code} after {took:.1f} s:\n{output}"
    assert "Traceback" not in output
    assert "interrupted" in output
    on_disk = _size(partial)
    assert RATE <= on_disk < len(CONTENT)
    if signals == 1:
        # Stopped at a safe point: the status was written from the disk after the stop.
        status = work.model_status("slow")
        assert (status["phase"], status["reason"]) == ("MISSING", "Interrupted"), status
        assert "progress" not in status or status["progress"] is None
        assert "resumes" in status["message"]

    hub.wait_for_requests("*/model.safetensors", "GET")  # the interrupted GET, once logged
    hub.clear_requests()
    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    gets = hub.requests_for("*/model.safetensors", "GET")
    assert len(gets) == 1, gets
    assert gets[0].status == 206 and gets[0].range is not None
    start = int(gets[0].range.removeprefix("bytes=").split("-")[0])
    assert start > 0 and gets[0].bytes_sent == len(CONTENT) - start  # only the rest
    assert work.model_status("slow")["phase"] == "AVAILABLE"
    blob = work.cache / "models--org--slow" / "blobs" / SHA
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == SHA

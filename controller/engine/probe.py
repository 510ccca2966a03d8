"""Running a model's probe: the manifest's real load test, with a timeout.

Checksums prove the bytes are the hub's; only loading the model proves this machine can use
it (the right library versions, enough memory, a working GPU).  The probe is the user's own
command, run offline against the verified snapshot; exit status 0 means healthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from controller.domain import DesiredModel, Probe
from controller.hub.revisions import redact

OUTPUT_TAIL = 2000  # characters of the probe's output kept for the status message


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    exit_code: int | None  # None: timed out, or the command could not start
    seconds: float
    message: str


def run_probe(
    model: DesiredModel, probe: Probe, *, commit: str, snapshot: Path, cache_dir: str
) -> ProbeOutcome:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # a probe tests what is on disk, never the network
        "HF_HUB_CACHE": cache_dir,
        "MODELSYNC_MODEL": model.name,
        "MODELSYNC_REPO": model.repo,
        "MODELSYNC_REVISION": model.revision,
        "MODELSYNC_COMMIT": commit,
        "MODELSYNC_SNAPSHOT": str(snapshot),
    }
    started = time.monotonic()
    try:
        # A session of its own, so a timeout kills the probe's children too (a loader
        # often forks workers).
        proc = subprocess.Popen(
            list(probe.command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        return ProbeOutcome(False, None, 0.0, f"cannot start {probe.command[0]!r}: {e.strerror}")
    try:
        output, _ = proc.communicate(timeout=probe.timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return ProbeOutcome(
            False,
            None,
            time.monotonic() - started,
            f"timed out after {probe.timeout_s:g} s{_tail(output)}",
        )
    seconds = time.monotonic() - started
    if proc.returncode == 0:
        return ProbeOutcome(True, 0, seconds, f"passed in {seconds:.1f} s")
    return ProbeOutcome(
        False, proc.returncode, seconds, f"exit status {proc.returncode}{_tail(output)}"
    )


def _tail(output: bytes | None) -> str:
    text = redact((output or b"").decode("utf-8", "replace")).strip()
    if not text:
        return ""
    return ": " + (text if len(text) <= OUTPUT_TAIL else "…" + text[-OUTPUT_TAIL:])

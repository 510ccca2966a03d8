"""A small file's download killed midway: its writer's own partial does not stay for ever.

A small blob is written into a partial of its writer's own (``<etag>.<random>.incomplete``,
as huggingface_hub names its own), which a ``kill -9`` leaves behind.  The next apply that
fetches the blob removes such partials once no live writer can still be filling them.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

from controller.hub import private_partial
from controller.hub.transfer import WHOLE_FILE_AT_MOST
from tests.support.cli import DEADLINE_S, Workdir
from tests.support.hub import LocalHub

MIB = 1024 * 1024
DATA = os.urandom(WHOLE_FILE_AT_MOST - MIB)  # fetched whole, into a private partial
SHA = hashlib.sha256(DATA).hexdigest()
CONFIG = b'{"model_type": "small"}\n'


def partials(blobs: Path) -> list[Path]:
    return sorted(blobs.glob(f"{SHA}.*.incomplete"))


def test_a_killed_writers_partial_is_removed_by_the_next_apply(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish("org/small", {"model.safetensors": DATA, "config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "small", "repo": "org/small"}])
    blobs = work.cache / "models--org--small" / "blobs"
    hold = hub.faults.hold("*/model.safetensors", after_bytes=MIB)

    proc = work.start("--apply")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not any(p.stat().st_size for p in partials(blobs)):
            assert proc.poll() is None, f"reconcile exited with {proc.returncode} early"
            assert time.monotonic() < deadline, "gave up waiting for bytes on disk"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        hold.release()
    (left,) = partials(blobs)
    # Aged past the bound beyond which no live writer leaves its partial untouched ...
    then = time.time() - private_partial.STALE_AFTER_SECONDS - 60
    os.utime(left, (then, then))
    # ... while a partial written just now may be another writer's, on another node.
    live = blobs / f"{SHA}.0123abcd.incomplete"
    live.write_bytes(DATA[:MIB])

    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    assert partials(blobs) == [live]
    assert hashlib.sha256((blobs / SHA).read_bytes()).hexdigest() == SHA
    assert work.model_status("small")["phase"] == "AVAILABLE"

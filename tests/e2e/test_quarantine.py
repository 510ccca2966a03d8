"""Damaged bytes moved to ``.quarantine/`` are shown, counted, and deleted after their grace.

A file damaged on disk is repaired by an apply; its bad bytes go to the repo's quarantine and
the status and the plan say so.  Within ``retention.quarantine_grace`` they stay; once it has
passed (the file's time, which the move set, is put back as time passing would), a pass
deletes them and the status shows nothing quarantined.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from tests.support.cli import Run, Workdir
from tests.support.hub import LocalHub, safetensors_bytes

WEIGHTS = safetensors_bytes(bytes(range(256)) * 256)  # 64 KiB
FILES = {"config.json": b'{"model_type": "tiny"}', "model.safetensors": WEIGHTS}
GRACE_S = 3600


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", FILES)
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest(
        [{"name": "tiny", "repo": "org/tiny"}], retention={"quarantine_grace": f"{GRACE_S}s"}
    )
    return w


def ok(run: Run) -> Run:
    assert run.code == 0, run.out + run.err
    return run


def quarantine(work: Workdir) -> Path:
    return work.cache / "models--org--tiny" / ".quarantine"


def test_repaired_bytes_are_shown_then_deleted_after_the_grace(work: Workdir) -> None:
    ok(work.reconcile("--apply"))
    snapshot = hf_hub_download(
        "org/tiny", "model.safetensors", cache_dir=work.cache, local_files_only=True
    )
    blob = Path(snapshot).resolve()
    damaged = bytearray(blob.read_bytes())
    damaged[-1] ^= 0x01
    blob.write_bytes(bytes(damaged))
    # A bad sector leaves the file's time as it was: the grace counts from the move, not
    # from the blob's last write.
    written = time.time() - GRACE_S * 2
    os.utime(blob, (written, written))

    ok(work.reconcile("--apply"))
    (moved,) = quarantine(work).iterdir()
    assert moved.read_bytes() == bytes(damaged)
    retention = work.status()["retention"]
    assert (retention["quarantined_files"], retention["quarantined_bytes"]) == (1, len(WEIGHTS))
    assert retention["quarantined"] == [{"repo": "org/tiny", "files": 1, "bytes": len(WEIGHTS)}]
    # The budget sees them: the model's bytes and the quarantined ones.
    assert retention["managed_bytes"] == len(WEIGHTS) * 2 + len(FILES["config.json"])
    shown = ok(work.reconcile("--plan", "--json")).json()
    assert shown["quarantined"] == [
        {"repo": "org/tiny", "files": 1, "bytes": len(WEIGHTS), "expiring": 0}
    ]
    assert "Quarantined (damaged bytes" in ok(work.reconcile("--plan")).out

    ok(work.reconcile("--apply"))  # within the grace: kept
    assert moved.exists()

    past = time.time() - GRACE_S - 60
    os.utime(moved, (past, past))
    planned = ok(work.reconcile("--plan", "--json")).json()
    (deletion,) = planned["actions"]
    assert (deletion["kind"], deletion["reason"], deletion["bytes"]) == (
        "delete",
        "QuarantineExpired",
        len(WEIGHTS),
    )
    ok(work.reconcile("--apply"))
    assert not quarantine(work).exists()
    retention = work.status()["retention"]
    assert (retention["quarantined_files"], retention["quarantined_bytes"]) == (0, 0)
    # The model itself is whole and available throughout.
    assert work.model_status("tiny")["phase"] == "AVAILABLE"
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == hashlib.sha256(WEIGHTS).hexdigest()

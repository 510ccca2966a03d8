"""Health checks with a probe: the manifest's own load test, run by `reconcile verify`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Workdir
from tests.support.hub import LocalHub, safetensors_bytes

WEIGHTS = safetensors_bytes(b"\x05" * 100_000)
FILES = {"config.json": b'{"model_type": "tiny"}', "model.safetensors": WEIGHTS}

# Loads the model the way an application would: offline, from the cache, by repo id.
LOADER = """
import os, sys
from huggingface_hub import hf_hub_download
path = hf_hub_download(os.environ["MODELSYNC_REPO"], "model.safetensors",
                       revision=os.environ["MODELSYNC_COMMIT"], local_files_only=True)
assert os.environ["HF_HUB_OFFLINE"] == "1"
assert os.path.dirname(path) == os.environ["MODELSYNC_SNAPSHOT"]
print("loaded", os.path.getsize(path), "bytes")
"""


def manifest(work: Workdir, probe: dict[str, Any]) -> None:
    work.write_manifest([{"name": "tiny", "repo": "org/tiny", "probe": probe}])


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", FILES)
    w = Workdir(tmp_path / "work", hub.url)
    manifest(w, {"command": [sys.executable, "-c", LOADER]})
    assert w.reconcile("--apply").code == 0
    return w


def test_a_passing_probe_is_recorded_in_status(work: Workdir) -> None:
    run = work.reconcile("verify")
    assert run.code == 0, run.out + run.err
    status = work.model_status("tiny")
    assert status["phase"] == "AVAILABLE"
    assert status["probe"]["ok"] is True and status["probe"]["exit_code"] == 0
    assert status["last_health_check"] is not None
    assert work.status()["retention"] is not None  # verify writes the whole status
    # A later apply keeps showing the latest health check.
    assert work.reconcile("--apply").code == 0
    assert work.model_status("tiny")["probe"]["ok"] is True


def test_a_failing_probe_fails_the_model_until_it_passes_again(work: Workdir) -> None:
    failing = "import sys; print('CUDA error: out of memory'); sys.exit(3)"
    manifest(work, {"command": [sys.executable, "-c", failing]})
    run = work.reconcile("verify")
    assert run.code == 1
    assert "files verified, but the probe failed: exit status 3: CUDA error: out of memory" in (
        run.out
    )
    status = work.model_status("tiny")
    assert (status["phase"], status["reason"]) == ("FAILED", "ProbeFailed")
    assert "out of memory" in status["message"] and status["probe"]["exit_code"] == 3
    assert work.reconcile("--plan", "--detailed-exitcode").code == 0  # nothing to download

    manifest(work, {"command": [sys.executable, "-c", LOADER]})
    assert work.reconcile("verify").code == 0
    assert work.model_status("tiny")["phase"] == "AVAILABLE"


def test_a_probe_that_hangs_is_stopped_at_its_timeout(work: Workdir) -> None:
    manifest(
        work, {"command": [sys.executable, "-c", "import time; time.sleep(60)"], "timeout": "1s"}
    )
    started = time.monotonic()
    run = work.reconcile("verify", "--json")
    assert time.monotonic() - started < 30
    assert run.code == 1
    (failed,) = run.json()["probes_failed"]
    assert failed["model"] == "tiny" and "timed out after 1 s" in failed["detail"]
    probe = work.model_status("tiny")["probe"]
    assert probe["ok"] is False and probe["exit_code"] is None


def test_a_probe_is_not_run_on_damaged_files(work: Workdir) -> None:
    marker = work.root / "probe-ran"
    manifest(work, {"command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]})
    for blob in (work.cache / "models--org--tiny" / "blobs").iterdir():
        if blob.stat().st_size == len(WEIGHTS):
            data = bytearray(blob.read_bytes())
            data[-1] ^= 1
            blob.write_bytes(bytes(data))
    assert work.reconcile("verify").code == 1
    assert not marker.exists()
    assert work.model_status("tiny")["phase"] == "CORRUPTED"

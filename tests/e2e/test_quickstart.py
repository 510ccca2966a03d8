"""The README's first command, ``bash examples/quickstart/run.sh``, works end to end.

The script runs against the virtualenv of this interpreter (``VENV``, so nothing is installed)
and writes into a temporary directory (``QUICKSTART_WORK``).  It starts its own local hub, so
nothing here contacts any host but 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "examples" / "quickstart" / "run.sh"
VENV = Path(sys.executable).parent.parent


def _status_rows(text: str) -> dict[str, str]:
    """NAME -> PHASE of the last status table in ``text``."""
    table = text[text.rindex("NAME  "):]
    rows = re.findall(r"^(t2v|text-encoder)\s+([A-Z]+)\s", table, flags=re.MULTILINE)
    return dict(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    if not (VENV / "bin" / "reconcile").exists():
        pytest.skip(f"{VENV} has no bin/reconcile: pip install -e '.[test]' into it")
    work = tmp_path_factory.mktemp("quickstart") / "work"
    env = {**os.environ, "VENV": str(VENV), "QUICKSTART_WORK": str(work)}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    return proc, work


def test_quickstart_succeeds(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = run
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plan_apply_converge(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    out = run[0].stdout
    assert "1 manifest file(s), 2 model(s): valid." in out
    first_plan = out[out.index("$ reconcile --plan"):out.index("$ reconcile --apply")]
    assert re.search(r"\+ download t2v\s+4 files", first_plan)
    assert re.search(r"\+ download text-encoder\s+3 files", first_plan)  # README.md skipped
    assert "Plan: 2 to download" in first_plan
    assert "(exit code 2, as expected)" in first_plan
    after_apply = out[out.index("$ reconcile status"):]
    assert _status_rows(after_apply[:after_apply.index("$ reconcile --plan")]) == {
        "t2v": "AVAILABLE", "text-encoder": "AVAILABLE"}
    assert "No changes. Models are up to date." in out


def test_model_loads_offline(run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    out = run[0].stdout
    assert re.search(r"blocks\.0\.attn\.qkv\.weight\s+\(768, 256\)\s+float16", out)
    assert "loaded 17 tensors, 1,705,216 parameters" in out
    assert "/snapshots/" in out


def test_damaged_weights_are_found_and_repaired_alone(
        run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    out = run[0].stdout
    damage = out[out.index("$ reconcile verify"):]
    assert "1 damaged." in damage
    assert "t2v: model.safetensors: content hashes to" in damage
    assert "(exit code 1, as expected)" in damage
    status = damage[damage.index("$ reconcile status"):damage.index("$ reconcile --plan")]
    assert _status_rows(status) == {"t2v": "CORRUPTED", "text-encoder": "AVAILABLE"}
    repair = damage[damage.index("$ reconcile --plan"):]
    assert re.search(r"-/\+ repair\s+t2v\s+1 file, 3\.4 MB\s+\(Corrupted\)", repair)
    assert "Plan: 0 to download, 0 to update, 1 to repair" in repair
    assert _status_rows(repair) == {"t2v": "AVAILABLE", "text-encoder": "AVAILABLE"}
    assert "sha256 of the weights blob" in repair and "which matches its name" in repair


def test_everything_stays_in_the_work_dir_and_the_hub_is_stopped(
        run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    out, work = run[0].stdout, run[1]
    assert (work / "state" / "status.yaml").is_file()
    assert (work / "cache" / "models--demo--tiny-t2v").is_dir()
    encoder = work / "cache" / "models--demo--tiny-text-encoder" / "snapshots"
    assert list(encoder.glob("*/config.json")) and not list(encoder.glob("*/README.md"))
    url = re.search(r"Local hub: (http://127\.0\.0\.1:\d+)", out)
    assert url, out
    with pytest.raises(urllib.error.URLError):  # the trap stopped the server
        urllib.request.urlopen(url.group(1) + "/api/models/demo/tiny-t2v", timeout=5)

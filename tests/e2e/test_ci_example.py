"""The CI example's plan step, run as GitHub Actions would run it, against a real manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import REPO_ROOT, Workdir
from tests.support.hub import LocalHub

WORKFLOW = REPO_ROOT / "examples" / "ci" / ".github" / "workflows" / "modelsync-plan.yml"


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def plan_step() -> dict[str, Any]:
    steps = workflow()["jobs"]["plan"]["steps"]
    step: dict[str, Any] = next(s for s in steps if s.get("id") == "plan")
    return step


def run_plan_step(work: Workdir, tmp_path: Path, **env: str) -> tuple[dict[str, str], str]:
    """The step's script under `bash -e -o pipefail`, as Actions runs `shell: bash`."""
    output, summary = tmp_path / "output", tmp_path / "summary"
    environment = {
        **os.environ,
        **workflow()["env"],
        "MANIFESTS": str(work.manifests),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        # `reconcile` as pip would install it: this interpreter's console script.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        **env,
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", plan_step()["run"]],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return outputs, summary.read_text()


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    if not (Path(sys.executable).parent / "reconcile").exists():
        pytest.skip("reconcile is not installed in this interpreter's environment")
    hub.publish("org/tiny", {"config.json": b"{}", "model.safetensors": b"\x01" * 10_000})
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest([{"name": "tiny", "repo": "org/tiny"}])
    assert w.reconcile("lock").code == 0
    hub.server.stop()  # the workflow never needs the hub
    return w


def test_the_workflow_needs_no_secrets_and_fails_only_on_exit_1() -> None:
    text = WORKFLOW.read_text()
    assert "secrets." not in text
    data = workflow()
    assert data[True]["pull_request"]["paths"][0] == "manifests/**"  # YAML 1.1 reads `on` as True
    fail = data["jobs"]["plan"]["steps"][-1]
    assert fail["if"] == "steps.plan.outputs.exitcode == '1'"
    assert "--locked --detailed-exitcode" in plan_step()["run"]


def test_pending_changes_are_posted_and_do_not_fail(work: Workdir, tmp_path: Path) -> None:
    outputs, summary = run_plan_step(work, tmp_path)
    assert outputs == {"exitcode": "2"}
    assert summary.startswith("### modelsync plan: changes pending\n")
    assert "+ download tiny  2 files, 10.0 kB  (Missing)" in summary
    assert (tmp_path / "plan.md").read_text() == summary


def test_a_stale_lock_fails_naming_the_model(work: Workdir, tmp_path: Path) -> None:
    work.write_manifest([{"name": "tiny", "repo": "org/tiny", "include": ["*.json"]}])
    outputs, summary = run_plan_step(work, tmp_path)
    assert outputs == {"exitcode": "1"}
    assert "tiny: the lock is stale: include is ['*.json'] in the manifest, [] in the lock" in (
        summary
    )


def test_an_invalid_manifest_fails_with_every_problem(work: Workdir, tmp_path: Path) -> None:
    (work.manifests / "models.yaml").write_text("apiVersion: modelsync/v1\nkind: Nope\n")
    outputs, summary = run_plan_step(work, tmp_path)
    assert outputs == {"exitcode": "1"}
    assert "models.yaml:2: kind: unsupported kind 'Nope'" in summary


def test_the_budget_is_checked(work: Workdir, tmp_path: Path) -> None:
    outputs, summary = run_plan_step(work, tmp_path, BUDGET_BYTES="5000")
    assert outputs == {"exitcode": "1"}
    assert "the plan does not fit the disk budget" in summary

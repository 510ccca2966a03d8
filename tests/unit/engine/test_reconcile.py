"""One pass in this process against a local hub: what its caller and its status see, in order."""

from __future__ import annotations

from pathlib import Path

import yaml

from controller.domain import Plan
from controller.domain.status import StatusReport
from controller.engine.reconcile import PassHooks, reconcile
from controller.manifest import loading
from tests.support.cli import Workdir
from tests.support.hub import LocalHub, safetensors_bytes

MODELS = [
    {"name": "first", "repo": "org/first", "priority": "critical"},
    {"name": "second", "repo": "org/second", "priority": "low"},
]


def test_the_plan_comes_before_any_change_and_a_model_is_available_once_its_work_ends(
    tmp_path: Path, hub: LocalHub
) -> None:
    for m in MODELS:
        weights = safetensors_bytes(m["name"].encode() * 1000)
        hub.publish(m["repo"], {"config.json": b"{}", "model.safetensors": weights})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(MODELS)
    plans: list[tuple[list[tuple[str, str]], bool, bool]] = []
    phases: list[dict[str, str]] = []

    def on_plan(plan: Plan) -> None:
        # What the caller is shown, and whether anything had changed on disk by then.
        shown = [(a.kind.value, a.model) for a in plan.actions]
        plans.append((shown, work.cache.exists(), work.status_file.exists()))

    def on_status(report: StatusReport) -> None:
        on_disk = yaml.safe_load(work.status_file.read_text())  # written before it is told
        phases.append({m["name"]: m["phase"] for m in on_disk["models"]})

    result = reconcile(
        loading.load(work.manifests), hooks=PassHooks(on_plan=on_plan, on_status=on_status)
    )

    assert result.ok
    assert plans == [([("download", "first"), ("download", "second")], False, False)]
    # `first` finished while `second` was still under way: the status said so at once,
    # from a re-read of `first` alone, not only when the whole pass ended.
    assert {"first": "AVAILABLE", "second": "DOWNLOADING"} in phases
    assert phases[-1] == {"first": "AVAILABLE", "second": "AVAILABLE"}

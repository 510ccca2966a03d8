"""One pass in this process against a local hub: what its caller and its status see, in order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from controller.cache.layout import read_tags, repo_folder
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
    # `second`'s weights wait, mid-body, until a status has shown `first` done: the status is
    # written at most once a second, so a wait bounded only by that second must see it.
    held = hub.faults.hold("*/org/second/*/model.safetensors", after_bytes=100)
    deadline = threading.Timer(15.0, held.release)  # a failing pass must not hang the test
    deadline.start()
    plans: list[tuple[list[tuple[str, str]], bool, bool]] = []
    phases: list[dict[str, str]] = []

    def on_plan(plan: Plan) -> None:
        # What the caller is shown, and whether anything had changed on disk by then.
        shown = [(a.kind.value, a.model) for a in plan.actions]
        plans.append((shown, work.cache.exists(), work.status_file.exists()))

    def on_status(report: StatusReport) -> None:
        on_disk = yaml.safe_load(work.status_file.read_text())  # written before it is told
        phases.append({m["name"]: m["phase"] for m in on_disk["models"]})
        if phases[-1].get("first") == "AVAILABLE":
            held.release()

    try:
        result = reconcile(
            loading.load(work.manifests), hooks=PassHooks(on_plan=on_plan, on_status=on_status)
        )
    finally:
        deadline.cancel()

    assert result.ok
    assert plans == [([("download", "first"), ("download", "second")], False, False)]
    # `first` finished while `second` was still under way: the status said so at once,
    # from a re-read of `first` alone, not only when the whole pass ended.
    assert {"first": "AVAILABLE", "second": "DOWNLOADING"} in phases
    assert phases[-1] == {"first": "AVAILABLE", "second": "AVAILABLE"}


def test_models_download_side_by_side_and_a_failure_fails_only_its_model(
    tmp_path: Path, hub: LocalHub
) -> None:
    """The critical model's weights are held mid-body until the status shows the others done:
    applied one model after another, the pass could never get there."""
    models = [
        {"name": "slow", "repo": "org/slow", "priority": "critical"},
        {"name": "quick", "repo": "org/quick", "priority": "low"},
        {"name": "broken", "repo": "org/broken", "priority": "low"},
    ]
    for m in models:
        weights = safetensors_bytes(m["name"].encode() * 1000)
        hub.publish(m["repo"], {"config.json": b"{}", "model.safetensors": weights})
    hub.faults.fail("*/org/broken/resolve/*/model.safetensors", 404, times=None)
    held = hub.faults.hold("*/org/slow/*/model.safetensors", after_bytes=100)
    deadline = threading.Timer(15.0, held.release)  # a failing pass must not hang the test
    deadline.start()
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(models)
    phases: list[dict[str, str]] = []

    def on_status(report: StatusReport) -> None:
        phases.append({m.name: m.phase.value for m in report.models})
        if phases[-1]["quick"] == "AVAILABLE" and phases[-1]["broken"] == "FAILED":
            held.release()

    try:
        result = reconcile(loading.load(work.manifests), hooks=PassHooks(on_status=on_status))
    finally:
        deadline.cancel()

    assert {"slow": "DOWNLOADING", "quick": "AVAILABLE", "broken": "FAILED"} in phases
    assert set(result.outcome.failures) == {"broken"}
    assert phases[-1] == {"slow": "AVAILABLE", "quick": "AVAILABLE", "broken": "FAILED"}


def test_the_status_is_written_about_once_a_second_however_many_models_change(
    tmp_path: Path, hub: LocalHub
) -> None:
    models = [{"name": f"m{i:02d}", "repo": f"org/m{i:02d}"} for i in range(30)]
    for m in models:
        hub.publish(m["repo"], {"config.json": m["name"].encode()})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(models)
    writes: list[float] = []

    started = time.monotonic()
    result = reconcile(
        loading.load(work.manifests),
        hooks=PassHooks(on_status=lambda _: writes.append(time.monotonic())),
    )
    elapsed = time.monotonic() - started

    assert result.ok
    # 60 phase changes; one write at the first, about one a second after, and the final one.
    assert len(writes) <= elapsed + 2, (len(writes), elapsed)
    assert all(b - a >= 0.9 for a, b in zip(writes[:-2], writes[1:-1], strict=True))
    assert {m["phase"] for m in work.status()["models"]} == {"AVAILABLE"}


def test_downloads_start_in_priority_order_within_the_connection_budget(
    tmp_path: Path, hub: LocalHub
) -> None:
    """More models are under way than the budget has connections; their files still go out
    over the one connection in the plan's order, a model's files together."""
    declared = {"a": "low", "b": "critical", "c": "medium", "d": "high"}
    models = [{"name": n, "repo": f"org/{n}", "priority": p} for n, p in declared.items()]
    for m in models:
        weights = safetensors_bytes(m["name"].encode() * 1000)
        hub.publish(m["repo"], {"config.json": b"{}", "model.safetensors": weights})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(models, downloads={"concurrency": 1})

    result = reconcile(loading.load(work.manifests))

    assert [a.model for a in result.plan.actions] == ["b", "d", "c", "a"]
    fetched = [r.path.split("/")[2] for r in hub.requests_for("/org/*/resolve/*")]
    assert fetched == ["b", "b", "d", "d", "c", "c", "a", "a"]
    assert result.ok


def test_the_tag_check_is_asked_while_the_models_files_download(
    tmp_path: Path, hub: LocalHub
) -> None:
    """Whether the revision is a tag is asked beside the model's downloads, not after them:
    the hub holds both answers mid-way, and both are seen held at once."""
    commit = hub.publish(
        "org/m", {"config.json": b"{}", "model.safetensors": safetensors_bytes(b"w" * 4096)}
    )
    hub.tag("org/m", "v1", commit)
    refs = hub.faults.hold("/api/models/org/m/refs", after_bytes=1)
    weights = hub.faults.hold("*/org/m/resolve/*/model.safetensors", after_bytes=100)
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "m", "repo": "org/m", "revision": "v1"}])
    both_held: list[bool] = []

    def referee() -> None:
        # Waits bounded by a deadline: asked only after the files, the tag check is never
        # seen held while the weights are, and the pass goes on once both are released.
        both_held.append(weights.reached.wait(15.0) and refs.reached.wait(15.0))
        weights.release()
        refs.release()

    watching = threading.Thread(target=referee)
    watching.start()
    try:
        result = reconcile(loading.load(work.manifests))
    finally:
        weights.release()
        refs.release()
        watching.join()

    assert both_held == [True]
    assert result.ok and work.model_status("m")["phase"] == "AVAILABLE"
    assert read_tags(repo_folder(work.cache, "org/m")) == {"v1"}


def test_the_default_branch_is_not_asked_about_tags(tmp_path: Path, hub: LocalHub) -> None:
    """Every Hub repo has the branch ``main``: a pass that points it asks nothing more than
    the revision and the files, and records no tag."""
    hub.publish("org/m", {"config.json": b"{}"})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "m", "repo": "org/m"}])

    result = reconcile(loading.load(work.manifests))

    assert result.ok and work.model_status("m")["phase"] == "AVAILABLE"
    assert hub.requests_for("/api/models/org/m/refs") == []
    assert read_tags(repo_folder(work.cache, "org/m")) == frozenset()

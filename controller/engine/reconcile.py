"""One pass of the loop: desired + observed -> plan -> apply -> status.

``reconcile --apply`` and the long-running controller both run passes through here, and
``--plan`` uses the same observe and plan functions (``controller.engine.locking``), so the three
ways of using modelsync cannot drift apart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from controller.domain import DesiredState, Phase, Plan, RemoteRevision
from controller.domain.budget import Budget
from controller.domain.progress import Snapshot
from controller.domain.status import Failure, StatusReport
from controller.domain.usage import window_start
from controller.engine import adoption, status_file
from controller.engine.apply import ApplyOutcome, apply_plan
from controller.engine.observe import observe, observe_models
from controller.engine.progress import ProgressTracker
from controller.engine.workspace import CacheWorkspace
from controller.manifest.loader import Downloads
from controller.planning import retention_view, status
from controller.planning.planner import assess_all, plan, queue
from controller.store.state import StateStore
from controller.system.cancel import StopSignal
from controller.system.clock import utcnow

Clock = Callable[[], datetime]

# During transfers the status file is rewritten at most this often with their progress.
STATUS_PROGRESS_SECONDS = 2.0


@dataclass(frozen=True)
class PassHooks:
    """What the long-running controller (``controller.runtime.loop``) plugs into a pass."""

    stop: StopSignal | None = None  # asks the pass to stop, wholly or one model's work
    progress: ProgressTracker | None = None  # hears every transfer; the status shows it
    on_status: Callable[[StatusReport], None] | None = None  # told every status written
    # Models in backoff after failing: no work this pass, reported with their last failure.
    held: Mapping[str, Failure] = field(default_factory=dict)
    # Problems the status reports too, asked at each write (an invalid manifest edit may
    # arrive mid-pass, and must not vanish from the status when the pass ends).
    errors: Callable[[], tuple[str, ...]] = tuple


@dataclass(frozen=True)
class Reconciled:
    plan: Plan
    outcome: ApplyOutcome
    status: StatusReport

    @property
    def ok(self) -> bool:
        return self.outcome.ok and not self.plan.errors


def reconcile(
    desired: DesiredState,
    *,
    downloads: Downloads | None = None,
    offline: bool = False,
    resolve: bool = True,
    clock: Clock = utcnow,
    pinned: Mapping[str, RemoteRevision] | None = None,
    hooks: PassHooks | None = None,
    budget: Budget | None = None,
) -> Reconciled:
    """``downloads`` is the manifest's ``spec.downloads`` (concurrency, bandwidth limit);
    ``pinned``: models described by their lock entries, not by the hub; downloads are then
    checked against the locked hashes.  ``budget``: the disk budget retention keeps to
    (``--budget-bytes``; default: retention.max_storage_usage_percent of the cache's disk).
    ``offline``: no request leaves the machine (files are only linked from cached blobs);
    ``resolve=False``: the hub is not asked what revisions point to, but may serve files."""
    settings = downloads or Downloads()
    hooks = hooks or PassHooks()
    with StateStore.open(Path(desired.state_dir)) as store:
        store.prune_usage(window_start(clock(), desired.usage_window_days))
        asks_hub = resolve and not offline
        observed = observe(desired, now=clock(), offline=not asks_hub, store=store, pinned=pinned)
        before = assess_all(desired, observed)
        the_plan = plan(desired, observed, clock(), assessments=before, budget=budget)
        if hooks.held:
            kept = tuple(a for a in the_plan.actions if a.model not in hooks.held)
            the_plan = replace(the_plan, actions=kept)
        order = list(queue(the_plan))
        # Each model's assessment as of its last change: a model whose work ended mid-pass is
        # assessed afresh, so its status says AVAILABLE then, not when the whole pass ends.
        current = {a.model.name: a for a in before}
        # Apply's thread (phase changes) and download threads (progress) both write the
        # status; one lock orders them, and each write derives from the latest phases.
        lock = threading.Lock()
        latest: list[tuple[dict[str, Phase], dict[str, Failure]]] = [({}, {})]
        planned_retention = retention_view.from_plan(the_plan)  # the plan is fixed for the pass

        def settle(names: set[str]) -> None:
            # Only the ended models' repos are read again, not the whole cache: once per
            # model, a whole-cache read would make a pass quadratic in the number of models.
            chosen = replace(desired, models=tuple(m for m in desired.models if m.name in names))
            fresh = observe_models(chosen, now=clock(), store=store, remote=observed.remote)
            current.update((a.model.name, a) for a in assess_all(chosen, fresh))
            order[:] = [name for name in order if name not in names]

        def write(report: StatusReport) -> None:
            status_file.write(desired.status_file, report)
            if hooks.on_status:
                hooks.on_status(report)

        def publish(in_progress: dict[str, Phase], failures: dict[str, Failure]) -> None:
            with lock:
                ended = set(latest[0][0]) - set(in_progress)
                if ended:
                    settle(ended)
                latest[0] = (in_progress, failures)
                report = status.derive(
                    tuple(current.values()),
                    generation=desired.generation,
                    now=clock(),
                    failures={**hooks.held, **failures},
                    in_progress=in_progress,
                    errors=(*hooks.errors(), *the_plan.errors),
                    usage=observed.usage,
                    queue_positions={name: i for i, name in enumerate(order, start=1)},
                    retention=planned_retention,
                )
                if hooks.progress is not None:
                    hooks.progress.retain(in_progress)
                    report = status.attach(report, hooks.progress.snapshot())
                write(report)

        def refresh(_: Snapshot) -> None:
            publish(*latest[0])

        workspace = CacheWorkspace(
            cache_dir=desired.cache_dir,
            endpoint=desired.endpoint,
            store=store,
            clock=clock,
            concurrency=settings.concurrency,
            max_bandwidth=settings.max_bandwidth_bytes,
            stop=hooks.stop,
            progress=hooks.progress,
            offline=offline,
        )
        unlisten = (
            hooks.progress.listen(refresh, every=STATUS_PROGRESS_SECONDS)
            if hooks.progress is not None
            else None
        )
        try:
            outcome = apply_plan(
                the_plan,
                workspace,
                on_phase=publish,
                should_stop=hooks.stop.stopped if hooks.stop is not None else None,
            )
        finally:
            if unlisten is not None:
                unlisten()
        # Re-read the disk rather than trusting the results: the status describes what is
        # there, including anything another process changed meanwhile.
        after = observe(desired, now=clock(), store=store, remote=observed.remote)
        settled = assess_all(desired, after)
        for a in settled:
            if a.requested and a.complete:
                store.clear_request(a.model.name)  # fulfilled: present and verified
        # `adopt: true` is recorded, so the ownership outlives the model's manifest entry.
        adoption.adopt(store, [a for a in settled if a.model.adopt], after, clock())
        remaining = plan(desired, after, clock(), assessments=settled, budget=budget)
        report = status.derive(
            settled,
            generation=desired.generation,
            now=clock(),
            failures={**hooks.held, **outcome.failures},
            errors=(*hooks.errors(), *the_plan.errors),
            usage=after.usage,
            queue_positions={name: e.position for name, e in queue(remaining).items()},
            retention=retention_view.from_plan(remaining),
        )
        with lock:
            if hooks.progress is not None:
                hooks.progress.retain(())
            write(report)
    return Reconciled(the_plan, outcome, report)

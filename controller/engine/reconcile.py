"""One pass: observe -> plan -> apply -> write status, from what was loaded.

The caller loads once (:func:`controller.manifest.loading.load`: the manifests and their lock
files) and hands the result here.  :func:`reconcile` then runs each stage once, in order:

1. **observe** the cache, the state store, the disk and (unless offline or pinned) the hub;
2. **plan** (pure), and hand the plan to the caller before anything changes;
3. **apply** the plan, writing the status at most once a second meanwhile -- a model whose
   work ended is re-read alone, so its status says AVAILABLE within that second;
4. **observe** once more and **write the status** from what is on disk now.

``reconcile --plan`` is stages 1 and 2 (:func:`plan_here`), or, for another machine, stage 2
from the status file that machine wrote (:func:`plan_for_machine`).  ``reconcile --apply`` and
the long-running controller both run :func:`reconcile`, so the three ways of using modelsync
cannot drift apart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from controller.domain import (
    DesiredState,
    Observation,
    Plan,
    Reason,
    RemoteProblem,
    RemoteRevision,
)
from controller.domain import budget as budgets
from controller.domain.assessment import Assessment
from controller.domain.budget import Budget
from controller.domain.progress import Snapshot
from controller.domain.status import Failure, StatusReport
from controller.domain.usage import window_start
from controller.engine import adoption, status_file
from controller.engine.apply import ApplyOutcome, ApplyRun, PhaseChange
from controller.engine.observe import observe, observe_models
from controller.engine.progress import ProgressTracker
from controller.hub.watchdog import SpeedFloor
from controller.manifest.loading import RELOCK, Loaded
from controller.planning import planner, retention_view, status
from controller.planning.nodestate import ReportedModel, ReportedState, observation_from_status
from controller.store import StateStore
from controller.system import collector
from controller.system.cancel import StopSignal
from controller.system.clock import utcnow

if TYPE_CHECKING:
    from controller.engine.workspace import CacheWorkspace

Clock = Callable[[], datetime]

# During a pass the status file is rewritten at most this often: with the phases of the
# models at work and the progress of their transfers.
STATUS_WRITE_SECONDS = 1.0
# ... or less often, so that writing the status takes at most 1/this of a pass.
_STATUS_COST_FACTOR = 10.0
# Models under way at once for each connection of the budget (see :func:`_apply`).
MODELS_PER_CONNECTION = 4


@dataclass(frozen=True)
class PassHooks:
    """What a caller plugs into a pass: the CLI, or the long-running controller
    (``controller.runtime.loop``)."""

    stop: StopSignal | None = None  # asks the pass to stop, wholly or one model's work
    progress: ProgressTracker | None = None  # hears every transfer; the status shows it
    on_plan: Callable[[Plan], None] | None = None  # told the plan before it is applied
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


class PlanRefused(Exception):
    """A plan that cannot be made from what was given; the message says why."""


# --------------------------------------------------------------------------- --plan


def plan_here(
    loaded: Loaded, *, offline: bool = False, budget: Budget | None = None, clock: Clock = utcnow
) -> Plan:
    """What a pass on this machine would do, changing nothing (not even the state directory).

    ``budget`` (``--budget-bytes``) stands for the disk of the machine the plan is for; without
    it, the plan keeps to retention.max_storage_usage_percent of this machine's cache disk.
    """
    now = clock()
    observed = observe(loaded.desired, now=now, offline=offline, pinned=loaded.pinned)
    if budget is not None:
        # The budget stands for the machine's disk; this one (a CI runner's) says nothing.
        observed = replace(observed, disk=None)
    # The planner checks the budget itself, as retention chooses the evictions that make it
    # fit.  It counts only what modelsync manages: what other programs keep on a shared disk
    # is not modelsync's to count (the planner separately refuses transfers that exceed the
    # free space), or every plan on a busy shared disk would fail.
    return _plan(loaded, observed, now, budget=budget)


def plan_for_machine(
    loaded: Loaded, status_path: str, *, budget: Budget | None = None, clock: Clock = utcnow
) -> Plan:
    """What a pass would do on the machine that wrote ``status_path`` (``--state``), with the
    file lists of its models from the lock; raises :class:`PlanRefused`."""
    reported, on_disk = _read_status(status_path)
    desired = loaded.desired
    if not loaded.pinned and desired.models:
        raise PlanRefused(
            f"--state plans from the lock, and there is none that can be used; {RELOCK}"
        )
    remote: dict[str, RemoteRevision | RemoteProblem] = {
        m.name: loaded.pinned.get(m.name)
        or RemoteProblem(
            Reason.HUB_UNREACHABLE,
            f"no usable lock entry, and --state plans from the lock; {RELOCK}",
        )
        for m in desired.models
        if not m.suspend
    }
    observed, notes = observation_from_status(desired, reported, remote)
    the_plan = planner.plan(desired, observed, clock())
    # Another machine: no cache to choose evictions from, only the total it reported.
    if budget is None:
        hint = (
            "the machine's disk size is not in its status; pass --budget-bytes N to check "
            "that the plan fits"
        )
        return _with(the_plan, warnings=(*loaded.warnings, *notes, hint))
    over, note = budgets.check(the_plan, on_disk=on_disk, budget=budget)
    return _with(the_plan, warnings=(*loaded.warnings, *notes, *note), errors=tuple(over))


# --------------------------------------------------------------------------- the pass


def reconcile(
    loaded: Loaded,
    *,
    offline: bool = False,
    resolve: bool = True,
    clock: Clock = utcnow,
    hooks: PassHooks | None = None,
    budget: Budget | None = None,
) -> Reconciled:
    """One pass over what ``loaded`` declares.

    Models its lock files pin are described by their lock entries, not by the hub, and their
    downloads are checked against the locked hashes.  ``budget``: the disk budget retention
    keeps to (``--budget-bytes``; default: retention.max_storage_usage_percent of the cache's
    disk).  ``offline``: no request leaves the machine (files are only linked from cached
    blobs); ``resolve=False``: the hub is not asked what revisions point to, but may serve
    files.
    """
    hooks = hooks or PassHooks()
    desired = loaded.desired
    with StateStore.open(Path(desired.state_dir)) as store:
        store.prune_usage(window_start(clock(), desired.usage_window_days))

        asks_hub = resolve and not offline
        observed = observe(
            desired, now=clock(), offline=not asks_hub, store=store, pinned=loaded.pinned
        )

        assessments = planner.assess_all(desired, observed)
        planned = the_plan = _plan(
            loaded, observed, clock(), assessments=assessments, budget=budget
        )
        if hooks.held:
            kept = tuple(a for a in the_plan.actions if a.model not in hooks.held)
            the_plan = replace(the_plan, actions=kept)
        if hooks.on_plan is not None:
            hooks.on_plan(the_plan)

        pass_status = _PassStatus(loaded, store, observed, assessments, the_plan, hooks, clock)
        workspace = _workspace(loaded, store, hooks, offline=offline, clock=clock)
        try:
            outcome = _apply(the_plan, workspace, pass_status, hooks)
        finally:
            workspace.close()

        # Re-read the disk rather than trusting the results: the status describes what is
        # there, including anything another process changed meanwhile.  A pass that applied
        # nothing has just read it: a second whole-cache read would double a no-op's cost.
        if outcome.results or outcome.stopped:
            after = observe(desired, now=clock(), store=store, remote=observed.remote)
            settled = _record_settled(store, desired, after, clock())
            with collector.paused():
                remaining = planner.plan(
                    desired, after, clock(), assessments=settled, budget=budget
                )
        else:  # and the plan made from that read is what is left to do
            after, settled, remaining = observed, assessments, planned
            _record_settled(store, desired, after, clock(), settled)
        report = _final_status(loaded, after, settled, remaining, the_plan, outcome, hooks, clock)
        pass_status.write_final(report)
    return Reconciled(the_plan, outcome, report)


def _plan(
    loaded: Loaded,
    observed: Observation,
    now: datetime,
    *,
    assessments: tuple[Assessment, ...] | None = None,
    budget: Budget | None,
) -> Plan:
    with collector.paused():  # see controller.system.collector
        the_plan = planner.plan(
            loaded.desired, observed, now, assessments=assessments, budget=budget
        )
    return _with(the_plan, warnings=loaded.warnings)


def _with(plan: Plan, *, warnings: tuple[str, ...] = (), errors: tuple[str, ...] = ()) -> Plan:
    """``plan`` with more warnings before its own, and more errors after its own."""
    return replace(plan, warnings=(*warnings, *plan.warnings), errors=(*plan.errors, *errors))


def _workspace(
    loaded: Loaded, store: StateStore, hooks: PassHooks, *, offline: bool, clock: Clock
) -> CacheWorkspace:
    # Imported here: the workspace brings the transfer and its HTTP client, which
    # ``--plan`` and ``verify`` never use, and importing them was a tenth of their start-up.
    from controller.engine.workspace import CacheWorkspace

    settings = loaded.manifests.downloads
    return CacheWorkspace(
        cache_dir=loaded.desired.cache_dir,
        endpoint=loaded.desired.endpoint,
        store=store,
        clock=clock,
        concurrency=settings.concurrency,
        connections_per_file=settings.connections_per_file,
        max_bandwidth=settings.max_bandwidth_bytes,
        speed_floor=SpeedFloor(settings.min_speed_bytes, settings.min_speed_seconds),
        stop=hooks.stop,
        progress=hooks.progress,
        offline=offline,
    )


def _apply(
    the_plan: Plan, workspace: CacheWorkspace, pass_status: _PassStatus, hooks: PassHooks
) -> ApplyOutcome:
    workspace.prioritize(list(dict.fromkeys(a.model for a in the_plan.actions)))
    run = ApplyRun(
        the_plan,
        workspace,
        should_stop=hooks.stop.stopped if hooks.stop is not None else None,
        # Independent models side by side: many small models are bound by round trips and
        # per-model bookkeeping (the ref, its directory syncs, the records), not bytes.  More
        # models are under way than the budget has connections, so that one model's
        # bookkeeping overlaps others' transfers; the workspace's file pool, with exactly
        # ``concurrency`` workers fed in the order models ask, keeps the transfers within
        # the budget and in priority order.
        parallel=workspace.concurrency * MODELS_PER_CONNECTION,
        on_model_done=workspace.model_done,
    )
    unlisten = (
        hooks.progress.listen(pass_status.progress_moved, every=STATUS_WRITE_SECONDS)
        if hooks.progress is not None
        else None
    )
    try:
        for change in run.phase_changes():
            pass_status.phases_changed(change)
    finally:
        if unlisten is not None:
            unlisten()
        pass_status.close()
    return run.outcome


def _record_settled(
    store: StateStore,
    desired: DesiredState,
    after: Observation,
    now: datetime,
    assessed: tuple[Assessment, ...] | None = None,
) -> tuple[Assessment, ...]:
    """Each model as the final observation shows it (``assessed``, when the caller has it),
    after recording what that settles: requests fulfilled, and ownership of models declared
    with ``adopt: true``."""
    settled = assessed if assessed is not None else planner.assess_all(desired, after)
    for a in settled:
        if a.requested and a.complete:
            store.clear_request(a.model.name)  # fulfilled: present and verified
    # `adopt: true` is recorded, so the ownership outlives the model's manifest entry.
    adoption.adopt(store, [a for a in settled if a.model.adopt], after, now)
    return settled


def _final_status(
    loaded: Loaded,
    after: Observation,
    settled: tuple[Assessment, ...],
    remaining: Plan,
    the_plan: Plan,
    outcome: ApplyOutcome,
    hooks: PassHooks,
    clock: Clock,
) -> StatusReport:
    """``remaining``: what is left to do, for the queue positions and retention reported."""
    desired = loaded.desired
    return status.derive(
        settled,
        generation=desired.generation,
        now=clock(),
        failures={**hooks.held, **outcome.failures},
        errors=(*hooks.errors(), *the_plan.errors),
        usage=after.usage,
        queue_positions={name: e.position for name, e in planner.queue(remaining).items()},
        retention=retention_view.from_plan(remaining),
        interrupted=outcome.stopped,
    )


class _PassStatus:
    """The status file while a pass applies its plan: rewritten at most every
    :data:`STATUS_WRITE_SECONDS` (less often for a status so large that writing it takes
    more than a tenth of that), whatever the number of phase changes.

    A pass over N models changes phase 2N times, and each write holds every model: writing at
    each change made a pass quadratic in bytes written.  A change arriving within the
    interval marks the status stale instead, and a timer writes it when the interval ends, so
    a phase still shows within about a second; the pass's end writes the final status.
    """

    def __init__(
        self,
        loaded: Loaded,
        store: StateStore,
        observed: Observation,
        assessments: tuple[Assessment, ...],
        the_plan: Plan,
        hooks: PassHooks,
        clock: Clock,
    ) -> None:
        self._desired = loaded.desired
        self._store = store
        self._observed = observed
        self._plan = the_plan
        self._hooks = hooks
        self._clock = clock
        # Each model's assessment as of its last change: a model whose work ended mid-pass is
        # assessed afresh, so its status says AVAILABLE then, not when the whole pass ends.
        self._current = {a.model.name: a for a in assessments}
        self._queue = list(planner.queue(the_plan))
        self._retention = retention_view.from_plan(the_plan)  # the plan is fixed for the pass
        self._phases = PhaseChange({}, {})
        self._ended: set[str] = set()  # models whose work ended since the last write
        self._stale = False
        self._progressed = threading.Event()  # a transfer moved since the last write
        self._written_at = float("-inf")
        self._interval = STATUS_WRITE_SECONDS
        # Apply's thread (phase changes), download threads (progress) and the timer all
        # touch the status; one lock orders them, and each write derives from the latest.
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._write_when_stale, daemon=True)
        self._timer.start()

    def phases_changed(self, change: PhaseChange) -> None:
        with self._lock:
            self._ended |= set(self._phases.in_progress) - set(change.in_progress)
            self._phases = change
            self._stale = True
            if time.monotonic() - self._written_at >= self._interval:
                self._flush()

    def progress_moved(self, _: Snapshot) -> None:
        # No lock: a download thread telling its progress must never wait for a status being
        # written.  The flag is read, and cleared before deriving, under the lock; a move
        # told meanwhile sets it again and is written at the next interval.
        self._progressed.set()

    def write_final(self, report: StatusReport) -> None:
        self.close()
        with self._lock:
            if self._hooks.progress is not None:
                self._hooks.progress.retain(())
            self._write(report)

    def close(self) -> None:
        """Stop the timer; the caller writes the final status."""
        self._closed.set()
        if self._timer is not threading.current_thread():
            self._timer.join()

    def _write_when_stale(self) -> None:
        wait = self._interval
        while not self._closed.wait(wait):
            with self._lock:
                since = time.monotonic() - self._written_at
                stale = self._stale or self._progressed.is_set()
                if stale and since >= self._interval and not self._closed.is_set():
                    self._flush()
                    since = 0.0
                # Until the next write may happen; a change made meanwhile waits for it.
                wait = self._interval - since if since < self._interval else self._interval

    def _flush(self) -> None:
        started = time.monotonic()
        self._progressed.clear()
        if self._ended:
            self._reread(self._ended)
            self._ended = set()
        self._write(self._derive())
        self._stale = False
        self._written_at = time.monotonic()
        # A status of thousands of models takes a good part of a second to write: writing
        # it every second would spend the pass on it.  At most a tenth of the time goes
        # to the status.
        cost = self._written_at - started
        self._interval = max(STATUS_WRITE_SECONDS, _STATUS_COST_FACTOR * cost)

    def _reread(self, names: set[str]) -> None:
        """Assess the models whose work ended from their own repos and records alone, all
        those of one interval together: a whole-cache read per model would make a pass
        quadratic in the number of models."""
        desired = self._desired
        chosen = replace(desired, models=tuple(m for m in desired.models if m.name in names))
        fresh = observe_models(
            chosen, now=self._clock(), store=self._store, remote=self._observed.remote
        )
        self._current.update((a.model.name, a) for a in planner.assess_all(chosen, fresh))
        self._queue = [name for name in self._queue if name not in names]

    def _derive(self) -> StatusReport:
        hooks, phases = self._hooks, self._phases
        report = status.derive(
            tuple(self._current.values()),
            generation=self._desired.generation,
            now=self._clock(),
            failures={**hooks.held, **phases.failures},
            in_progress=phases.in_progress,
            errors=(*hooks.errors(), *self._plan.errors),
            usage=self._observed.usage,
            queue_positions={name: i for i, name in enumerate(self._queue, start=1)},
            retention=self._retention,
        )
        if hooks.progress is not None:
            hooks.progress.retain(phases.in_progress)
            report = status.attach(report, hooks.progress.snapshot())
        return report

    def _write(self, report: StatusReport) -> None:
        status_file.write(self._desired.status_file, report)
        if self._hooks.on_status is not None:
            self._hooks.on_status(report)


def _read_status(path: str) -> tuple[ReportedState, int]:
    """Another machine's status as planning needs it, and the bytes its models take there."""
    if not Path(path).is_file():
        raise PlanRefused(f"{path}: no such status file")
    try:
        report = status_file.read(path)
    except Exception as e:  # a hand-edited or truncated file is a user problem, not a bug
        raise PlanRefused(f"{path}: not a modelsync status file: {e}") from None
    models = {
        m.name: ReportedModel(
            name=m.name,
            commit=m.commit,
            missing=m.missing_files,
            corrupt=m.corrupt_files,
            unverified=m.unverified_files,
            expected_size=m.expected_size,
            requested=m.reason is Reason.REQUESTED,
            uses_per_day=m.usage_frequency,
            last_used=m.last_used,
        )
        for m in report.models
    }
    # Every model the machine reported counts, declared here or not: until retention deletes
    # a model, its bytes stay on that disk.
    on_disk = sum(m.size_on_disk for m in report.models)
    return ReportedState(models=models, checked_at=report.updated_at), on_disk

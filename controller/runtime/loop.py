"""The long-running controller: ``reconcile --watch``.

Level-based, like a Kubernetes controller: whatever happened -- a manifest edit, a resync,
an update check, a request over the API, a model's backoff running out -- only *asks* for a
reconcile, and each reconcile starts from the whole desired and observed state, never from
the event.  One pass runs at a time on the loop thread; triggers arriving during a pass
coalesce into exactly one more pass, so a burst of edits costs two passes, not twenty.

The controller also owns what outlives a pass: the last good manifests (an invalid edit is
reported and the last good one stays in force), each failing model's backoff, the event bus,
transfer progress and the metrics.  Stopping -- a suspended model, a pause, SIGTERM -- goes
through a :class:`~controller.system.cancel.StopSignal` that the running pass checks between
chunks and files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from controller.api.events import EventBus, EventKind
from controller.api.metrics import Metrics, Sample
from controller.domain import DesiredState, Disk, Phase, Reason, budget
from controller.domain.progress import Snapshot, describe
from controller.domain.status import StatusReport
from controller.domain.units import first_line
from controller.engine import health as verification
from controller.engine import status_file
from controller.engine.progress import ProgressTracker
from controller.engine.reconcile import PassHooks, Reconciled, reconcile
from controller.hub import revisions
from controller.manifest.loading import Loaded, Rejected, load
from controller.manifest.schema import Controller as Settings
from controller.planning.backoff import BackoffBook, BackoffPolicy
from controller.store import StateStore
from controller.system.cancel import Cancelled, StopSignal
from controller.system.clock import utcnow

log = logging.getLogger("modelsync.watch")

PROGRESS_EVENT_SECONDS = 1.0  # progress events at most this often per stream
PROGRESS_LOG_SECONDS = 10.0  # and log lines this often


class Trigger(str, Enum):
    """Why a pass was asked for."""

    STARTUP = "startup"
    MANIFEST = "manifest"  # the manifests changed (file watch, SIGHUP)
    RESYNC = "resync"  # periodic, against the cache and the hub's last answer
    UPDATE_CHECK = "update-check"  # periodic, asks the hub whether revisions moved
    HEALTH_CHECK = "health-check"  # periodic: re-hash everything first
    RECONCILE = "reconcile"  # POST /v1/reconcile: a person asked; backoffs are lifted
    MODEL = "model"  # a model was requested, paused or resumed
    RETRY = "retry"  # a failing model's backoff ran out

    @property
    def asks_hub(self) -> bool:
        # Resyncs and health checks are local: the hub's last answer describes the models.
        return self not in (Trigger.RESYNC, Trigger.HEALTH_CHECK)


class TriggerQueue:
    """Pending triggers as a set: however many arrive during a pass, one more pass runs."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._pending: set[Trigger] = set()
        self._closed = False

    def put(self, trigger: Trigger) -> None:
        with self._ready:
            if not self._closed:
                self._pending.add(trigger)
                self._ready.notify()

    def take(self, timeout: float | None = None) -> frozenset[Trigger] | None:
        """Every pending trigger at once, waiting up to ``timeout`` seconds for one (an
        empty set when none came); None once the queue is closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._pending or self._closed, timeout)
            if self._closed:
                return None
            batch = frozenset(self._pending)
            self._pending.clear()
            return batch

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        with self._ready:
            return self._closed


def backoff_policy(settings: Settings) -> BackoffPolicy:
    base = settings.seconds(settings.retry_backoff)
    cap = settings.seconds(settings.retry_backoff_max)
    assert base is not None and cap is not None
    return BackoffPolicy(base=base, cap=max(base, cap))


class Controller:
    def __init__(
        self,
        path: str | Path,
        loaded: Loaded,
        *,
        locked: bool = False,
        offline: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``locked``: reject manifest edits whose lock is missing or out of sync.
        ``offline``: no pass asks the hub what revisions point to, whatever its trigger
        (``--watch --offline``): the controller goes on verifying, relinking files from
        cached blobs and applying retention, against the cache and the hub's last answer."""
        self.path = str(path)
        self.locked = locked
        self.offline = offline
        self.clock = clock
        self.bus = EventBus()
        self.triggers = TriggerQueue()
        self.progress = ProgressTracker()
        self.metrics = Metrics()
        self._loaded = loaded
        _log_warnings(loaded)
        self._backoff = BackoffBook(backoff_policy(loaded.settings))
        self._lock = threading.Lock()  # loaded, backoff, problems, the running pass
        self._reload_lock = threading.Lock()  # one reload at a time (watcher, SIGHUP)
        self._status_lock = threading.Lock()  # the last report and the phases seen
        self._problems: tuple[str, ...] = ()
        self._current: StopSignal | None = None
        self._report: StatusReport | None = None
        self._plan_errors: tuple[str, ...] = ()
        self._phases: dict[str, tuple[Any, ...]] = {}
        self._disk: Disk | None = None
        # Models the hub could not describe yet: resyncs ask it too until it has.
        self._hub_pending = False
        self._reload_listeners: list[Callable[[Loaded], None]] = []
        self._thread = threading.Thread(target=self._run, name="modelsync-loop", daemon=True)
        self.progress.listen(self._progress_events, every=PROGRESS_EVENT_SECONDS)
        self.progress.listen(self._progress_log, every=PROGRESS_LOG_SECONDS)

    # ----------------------------------------------------------------- what others read

    @property
    def loaded(self) -> Loaded:
        with self._lock:
            return self._loaded

    @property
    def desired(self) -> DesiredState:
        return self.loaded.desired

    @property
    def problems(self) -> tuple[str, ...]:
        with self._lock:
            return self._problems

    @property
    def report(self) -> StatusReport | None:
        with self._status_lock:
            return self._report

    @property
    def disk(self) -> Disk | None:
        return self._disk

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ready(self) -> bool:
        report = self.report
        return report is not None and report.summary.ready

    def transfers(self) -> Snapshot:
        """Transfers in flight, by model."""
        return self.progress.snapshot()

    def metrics_sample(self) -> Sample:
        """The counts, with the latest status, the cache's disk and its budget."""
        disk = self.disk
        percent = self.loaded.manifests.retention.max_storage_usage_percent
        return self.metrics.sample(
            report=self.report,
            downloaded=self.progress.received(),
            disk=disk,
            budget_bytes=None if disk is None else budget.from_percent(percent, disk).bytes,
            ready=self.ready,
        )

    def on_reload(self, listener: Callable[[Loaded], None]) -> None:
        self._reload_listeners.append(listener)

    # ----------------------------------------------------------------- what others ask

    def start(self) -> None:
        self.triggers.put(Trigger.STARTUP)
        self._thread.start()

    def request(self, trigger: Trigger) -> None:
        if trigger is Trigger.RECONCILE:
            with self._lock:
                self._backoff.clear()
        self.triggers.put(trigger)

    def reconcile_now(self) -> None:
        """A person asked for a pass (``POST /v1/reconcile``): failing models try again too."""
        self.request(Trigger.RECONCILE)

    def fetch_requested(self) -> None:
        """A model was requested and queued: fetch it now, not at the next resync."""
        self.request(Trigger.MODEL)

    def stop_model(self, name: str) -> None:
        """Stop ``name``'s work in the running pass (it was paused) and reconcile again."""
        with self._lock:
            current = self._current
        if current is not None:
            current.stop_model(name)
        self.triggers.put(Trigger.MODEL)

    def resume_model(self, name: str) -> None:
        with self._lock:
            self._backoff.clear([name])
        self.triggers.put(Trigger.MODEL)

    def reload(self, *, force: bool = False) -> bool:
        """Re-read the manifests; True when they changed (or ``force``) and a pass was asked
        for.  An invalid edit is reported and the last good manifests stay in force."""
        with self._reload_lock:
            try:
                loaded = load(self.path, locked=self.locked)
                _log_warnings(loaded)
                _check_restartless(self.loaded, loaded)
            except Rejected as e:
                self._reject(e.problems)
                return False
            with self._lock:
                previous, self._loaded = self._loaded, loaded
                had_problems, self._problems = bool(self._problems), ()
                changed = loaded.key != previous.key
                if changed:
                    self._backoff = BackoffBook(backoff_policy(loaded.settings))
                current = self._current
            if had_problems:
                log.info("manifests valid again: %s", self.path)
                self._rewrite_status()
            if not changed and not force:
                return False
            revisions.configure(loaded.desired.endpoint)
            if current is not None:
                for name in _stopped_by(previous.desired, loaded.desired):
                    current.stop_model(name)
            for listener in self._reload_listeners:
                listener(loaded)
            models = len(loaded.desired.models)
            log.info("manifests loaded: %d model(s), generation %s", models, loaded.key[:12])
            self.bus.publish(
                EventKind.MANIFEST,
                {"valid": True, "generation": loaded.desired.generation, "models": models},
            )
            self.triggers.put(Trigger.MANIFEST)
            return True

    def stop(self, grace: float) -> bool:
        """Stop at the next safe point; True when the loop ended within ``grace`` seconds."""
        self.triggers.close()
        with self._lock:
            current = self._current
        if current is not None:
            current.stop_all()
        if self._thread.is_alive():
            self._thread.join(grace)
        self.bus.close()
        return not self._thread.is_alive()

    # ----------------------------------------------------------------- the loop

    def _run(self) -> None:
        while True:
            with self._lock:
                wait = self._backoff.seconds_until_due(self.clock())
            batch = self.triggers.take(timeout=wait)
            if batch is None:
                return
            try:
                self._pass(batch or frozenset({Trigger.RETRY}))
            except Exception:  # the loop must outlive any one pass's bug
                log.exception("reconcile pass failed")

    def _pass(self, batch: frozenset[Trigger]) -> None:
        loaded = self.loaded
        reasons = sorted(t.value for t in batch)
        if Trigger.HEALTH_CHECK in batch:
            self._health_check(loaded.desired)
        online = not self.offline and (self._hub_pending or any(t.asks_hub for t in batch))
        signal = StopSignal()
        with self._lock:
            if self.triggers.closed:  # stopping: no new pass
                return
            self._current = signal
            held = self._backoff.held(self.clock())
        log.info("reconcile: %s", ", ".join(reasons), extra={"triggers": reasons})
        self.bus.publish(
            EventKind.RECONCILE, {"state": "started", "triggers": reasons, "online": online}
        )
        started = time.monotonic()
        result: Reconciled | None = None
        try:
            result = reconcile(
                loaded,
                offline=self.offline,
                resolve=online,
                hooks=PassHooks(
                    stop=signal,
                    progress=self.progress,
                    on_status=self._on_status,
                    held=held,
                    errors=lambda: self.problems,
                ),
            )
        except Exception:
            log.exception("reconcile failed")
        finally:
            with self._lock:
                self._current = None
            seconds = time.monotonic() - started
            self.metrics.record_pass(seconds, ok=result is not None and result.ok)
        if result is not None:
            self._after_pass(result, held)
        outcome = result.outcome if result is not None else None
        self.bus.publish(
            EventKind.RECONCILE,
            {
                "state": "finished",
                "triggers": reasons,
                "seconds": round(seconds, 3),
                "ok": result is not None and result.ok,
                "actions": len(result.plan.actions) if result is not None else 0,
                "failed": sorted(outcome.failures) if outcome else [],
                "stopped": list(outcome.stopped) if outcome else [],
            },
        )

    def _after_pass(self, result: Reconciled, held: Mapping[str, Any]) -> None:
        outcome = result.outcome
        planned = {a.model for a in result.plan.actions}
        with self._lock:
            self._backoff.record(
                self.clock(),
                failures=outcome.failures,
                succeeded=planned - set(outcome.failures) - set(outcome.stopped),
            )
            now_held = self._backoff.held(self.clock())
        self._disk = result.plan.disk
        self._plan_errors = result.plan.errors
        self._hub_pending = any(
            m.commit is None and m.reason is Reason.HUB_UNREACHABLE for m in result.status.models
        )
        for r in outcome.results:
            damaged = [o for o in r.outcomes if o.repaired or (not o.ok and o.reason in _DAMAGE)]
            self.metrics.count_verify_failures(r.action.model, len(damaged))
        fresh = {name: f for name, f in now_held.items() if name not in held}
        if fresh:
            # The pass wrote these failures before their backoff existed: say when the
            # next attempt comes, as the following passes will.
            self._rewrite_status(
                {name: failure.message for name, failure in fresh.items()}, base=result.status
            )

    def _health_check(self, desired: DesiredState) -> None:
        started = time.monotonic()
        try:
            with StateStore.open(Path(desired.state_dir)) as store:
                checks = verification.verify_declared(
                    desired, store, clock=self.clock, full=True, stop=lambda: self.triggers.closed
                )
        except Cancelled:
            log.info("health check stopped: the controller is stopping")
            return
        for c in checks:
            if c.probe:
                log.warning("health check: %s: probe failed: %s", c.model, first_line(c.detail),
                            extra={"model": c.model, "detail": c.detail})
        checks = [c for c in checks if not c.probe]
        bad = [c for c in checks if not c.ok]
        for model, count in Counter(c.model for c in bad).items():
            self.metrics.count_verify_failures(model, count)
        for c in bad:
            log.warning("health check: %s: %s", c.model, c.detail, extra={"model": c.model})
        seconds = time.monotonic() - started
        log.info(
            "health check: %d files re-hashed in %.1f s, %d damaged", len(checks), seconds, len(bad)
        )
        self.bus.publish(
            EventKind.HEALTH,
            {
                "checked": len(checks),
                "damaged": [{"model": c.model, "path": c.path, "detail": c.detail} for c in bad],
                "seconds": round(seconds, 3),
            },
        )

    # ----------------------------------------------------------------- status and events

    def _on_status(self, report: StatusReport) -> None:
        with self._status_lock:
            self._report = report
            for m in report.models:
                key = (m.phase, m.reason, m.commit, m.update_available)
                previous = self._phases.get(m.name)
                if previous == key:
                    continue
                self._phases[m.name] = key
                log.info(
                    "%s: %s (%s) %s",
                    m.name,
                    m.phase.value,
                    m.reason.value,
                    m.message,
                    extra={"model": m.name, "phase": m.phase.value, "reason": m.reason.value},
                )
                self.bus.publish(
                    EventKind.PHASE,
                    {
                        "model": m.name,
                        "phase": m.phase.value,
                        "reason": m.reason.value,
                        "message": m.message,
                        "commit": m.commit,
                        "update_available": m.update_available,
                        "upstream_commit": m.upstream_commit,
                        "previous_phase": None if previous is None else previous[0].value,
                    },
                )

    def _rewrite_status(
        self, messages: Mapping[str, str] | None = None, *, base: StatusReport | None = None
    ) -> None:
        """Write the last status again with the current problems (and new messages)."""
        report = base or self.report
        if report is None:
            return
        models = tuple(
            m.model_copy(update={"message": messages[m.name]})
            if messages and m.name in messages and m.phase is Phase.FAILED
            else m
            for m in report.models
        )
        report = report.model_copy(
            update={"models": models, "errors": (*self.problems, *self._plan_errors)}
        )
        status_file.write(self.loaded.desired.status_file, report)
        self._on_status(report)

    def _reject(self, problems: tuple[str, ...]) -> None:
        with self._lock:
            self._problems = problems
        for problem in problems:
            log.error("manifest rejected: %s", problem, extra={"problem": problem})
        log.error("the last valid manifests stay in force until the edit is fixed")
        self.bus.publish(EventKind.MANIFEST, {"valid": False, "problems": list(problems)})
        self._rewrite_status()

    def _progress_events(self, snapshot: Snapshot) -> None:
        for name, p in snapshot.items():
            self.bus.publish(EventKind.PROGRESS, {"model": name, **p.model_dump(mode="json")})

    def _progress_log(self, snapshot: Snapshot) -> None:
        for name, p in snapshot.items():
            log.info(
                "%s: %s",
                name,
                describe(p),
                extra={"model": name, "bytes_done": p.bytes_done, "bytes_total": p.bytes_total},
            )


_DAMAGE = {Reason.CHECKSUM_MISMATCH, Reason.SIZE_MISMATCH}


def _stopped_by(before: DesiredState, after: DesiredState) -> list[str]:
    """Models with work before an edit that must stop after it: suspended, or removed."""
    active = {m.name for m in after.models if not m.suspend}
    return [m.name for m in before.models if not m.suspend and m.name not in active]


def _log_warnings(loaded: Loaded) -> None:
    for warning in loaded.warnings:
        log.warning("%s", warning)


def _check_restartless(current: Loaded, new: Loaded) -> None:
    """Settings a running controller cannot change without a restart."""
    problems = []
    if new.desired.state_dir != current.desired.state_dir:
        problems.append(
            f"spec.state changed to {new.desired.state_dir}: the controller holds its claim on "
            f"the cache in {current.desired.state_dir}; restart it to move"
        )
    old, now = current.settings, new.settings
    if (old.host, old.port) != (now.host, now.port):
        log.warning("spec.controller host/port changed: the API moves at the next restart")
    if problems:
        raise Rejected(problems)

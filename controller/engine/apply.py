"""Apply: carry out a plan's actions through the reconcilers, several models at a time.

Apply takes only the plan (and the means to act); it never re-plans.  A model whose action
fails is recorded as failed and the other models go on.  A model's ref is pointed at its
commit only after every one of its actions succeeded, so applications resolving the
revision never land on a commit with missing or unverified files.  Its deletions come after
that, and only then.  The revision a switch leaves behind is not among them: retention plans
its deletion only once the ref has pointed away from it for a grace period, because an
application may have resolved a path in it just before the switch.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from controller.domain import Action, ActionKind, Phase, Plan, Reason
from controller.domain.status import Failure
from controller.system.cancel import Cancelled
from reconcilers import download, integrity, retention
from reconcilers.base import ActionResult, FileOutcome, Workspace

log = logging.getLogger("modelsync.apply")

_RECONCILERS = {
    ActionKind.DOWNLOAD: download.apply,
    ActionKind.UPDATE: download.apply,
    ActionKind.REPAIR: integrity.apply,
    ActionKind.VERIFY: integrity.apply,
    ActionKind.DELETE: retention.apply,
}


@dataclass(frozen=True)
class ApplyOutcome:
    results: tuple[ActionResult, ...]
    failures: dict[str, Failure]
    # Models whose work was asked to stop (suspended, paused, shutting down) before it
    # finished: neither done nor failed, and their partial files are kept.
    stopped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class PhaseChange:
    """Where an apply stands each time a model enters or leaves a transfer phase."""

    in_progress: dict[str, Phase]  # models transferring now
    failures: dict[str, Failure]  # models failed so far


class ApplyRun:
    """One apply of a plan, up to ``parallel`` models at a time.

    Iterating :meth:`phase_changes` carries the plan out and hands the caller each phase
    change as it happens (the pass writes the status from them); :attr:`outcome` is the
    result once the iteration has ended.  The caller drives, so apply never calls back into
    the pass that runs it.

    Models start in plan order, which is priority order, so a higher priority starts first;
    each model's promises hold whatever runs beside it, because each model's actions, ref
    and deletions stay in one thread, in order.
    """

    def __init__(
        self,
        plan: Plan,
        workspace: Workspace,
        *,
        should_stop: Callable[[str], bool] | None = None,
        parallel: int = 1,
        on_model_done: Callable[[str], None] | None = None,
    ) -> None:
        """``should_stop(model)`` is asked as each model starts; a model whose work is stopped
        meanwhile (the workspace raises :class:`~controller.system.cancel.Cancelled`) keeps its
        ref where it was and the other models go on.  ``on_model_done(model)`` is told, in
        the model's thread, once the model's work has ended, however it ended."""
        self._plan = plan
        self._workspace = workspace
        self._should_stop = should_stop
        self._on_model_done = on_model_done
        self._parallel = max(1, parallel)
        self._outcome: ApplyOutcome | None = None

    @property
    def outcome(self) -> ApplyOutcome:
        if self._outcome is None:
            raise RuntimeError("the apply has not run to its end")
        return self._outcome

    def phase_changes(self) -> Iterator[PhaseChange]:
        grouped = _by_model(self._plan.actions)
        done: dict[str, _ModelDone] = {}
        failures: dict[str, Failure] = {}
        in_progress: dict[str, Phase] = {}
        events: queue.Queue[_Started | _ModelDone] = queue.Queue()
        with ThreadPoolExecutor(max_workers=min(self._parallel, max(1, len(grouped)))) as pool:
            for model, actions in grouped.items():  # the pool's queue keeps this order
                pool.submit(self._run_model, model, actions, events)
            while len(done) < len(grouped):
                event = _next(events)
                if isinstance(event, _Started):
                    in_progress[event.model] = event.phase
                else:
                    if event.error is not None:
                        raise event.error
                    done[event.model] = event
                    if event.failure is not None:
                        failures[event.model] = event.failure
                    if in_progress.pop(event.model, None) is None and event.stopped_early:
                        continue  # never started: nothing changed
                yield PhaseChange(dict(in_progress), dict(failures))
        results = [r for model in grouped for r in done[model].results]
        stopped = tuple(m for m in grouped if done[m].stopped)
        self._outcome = ApplyOutcome(tuple(results), failures, stopped)

    def _run_model(
        self, model: str, actions: list[Action], events: queue.Queue[_Started | _ModelDone]
    ) -> None:
        try:
            if self._should_stop is not None and self._should_stop(model):
                events.put(_ModelDone(model, (), None, stopped=True, stopped_early=True))
                return
            transient = _transfer_phase(actions)
            if transient is not None:
                events.put(_Started(model, transient))
            model_results, cancelled = _apply_one_model(actions, self._workspace)
            if cancelled:
                log.info("%s: stopped at a safe point; partial files are kept", model)
            failure = None if cancelled else _failure(model_results)
            events.put(_ModelDone(model, tuple(model_results), failure, stopped=cancelled))
        except BaseException as e:  # handed to the iterating thread, which raises it
            events.put(_ModelDone(model, (), None, stopped=False, error=e))
        finally:
            if self._on_model_done is not None:
                self._on_model_done(model)


@dataclass(frozen=True)
class _Started:
    model: str
    phase: Phase


@dataclass(frozen=True)
class _ModelDone:
    model: str
    results: tuple[ActionResult, ...]
    failure: Failure | None
    stopped: bool
    stopped_early: bool = False  # stopped before its work began
    error: BaseException | None = None


def _next(events: queue.Queue[_Started | _ModelDone]) -> _Started | _ModelDone:
    # A bounded wait, so that a signal handler (Ctrl-C asks the pass to stop) runs promptly
    # in this, the main, thread.
    while True:
        try:
            return events.get(timeout=0.5)
        except queue.Empty:
            continue


def apply_plan(
    plan: Plan, workspace: Workspace, *, should_stop: Callable[[str], bool] | None = None
) -> ApplyOutcome:
    """The plan carried out to its end, for a caller with no use for the phase changes."""
    run = ApplyRun(plan, workspace, should_stop=should_stop)
    for _ in run.phase_changes():
        pass
    return run.outcome


def _apply_one_model(
    actions: list[Action], workspace: Workspace
) -> tuple[list[ActionResult], bool]:
    """One model's actions, its ref pointed and then its deletions; the results, and whether
    its work was stopped midway."""
    work = [a for a in actions if a.kind is not ActionKind.DELETE]
    results, cancelled = _apply_actions(work, workspace)
    if cancelled or _failure(results) is not None:
        return results, cancelled
    if work:
        workspace.point_ref(work[-1])
    # Deletions run last, and only once the model's other work succeeded and its ref moved
    # (an old revision is planned only a grace period after its switch).
    deletions = [a for a in actions if a.kind is ActionKind.DELETE]
    deleted, cancelled = _apply_actions(deletions, workspace)
    return [*results, *deleted], cancelled


def _by_model(actions: tuple[Action, ...]) -> dict[str, list[Action]]:
    grouped: dict[str, list[Action]] = {}
    for a in actions:  # dicts keep insertion order: models run in plan order
        grouped.setdefault(a.model, []).append(a)
    return grouped


def _transfer_phase(actions: list[Action]) -> Phase | None:
    kinds = {a.kind for a in actions if a.files}
    if ActionKind.UPDATE in kinds:
        return Phase.UPDATING
    if kinds & {ActionKind.DOWNLOAD, ActionKind.REPAIR}:
        return Phase.DOWNLOADING
    return None


def _apply_actions(actions: list[Action], workspace: Workspace) -> tuple[list[ActionResult], bool]:
    """The results of the model's actions, and whether its work was stopped midway."""
    results = []
    for action in actions:
        log.info("%s %s: %s", action.kind.value, action.model, action.message)
        try:
            results.append(_RECONCILERS[action.kind](action, workspace))
        except Cancelled:
            return results, True
        except OSError as e:
            # A full disk or a permission problem fails this model, not the whole run.
            outcome = FileOutcome(
                path="",
                ok=False,
                reason=_reason_for(action),
                detail=f"{action.kind.value} failed: {e.strerror or e}",
            )
            results.append(ActionResult(action, (outcome,)))
    return results, False


def _reason_for(action: Action) -> Reason:
    if action.kind is ActionKind.DELETE:
        return Reason.DELETE_FAILED
    return Reason.DOWNLOAD_FAILED if action.kind is not ActionKind.VERIFY else Reason.CORRUPTED


def _failure(results: list[ActionResult]) -> Failure | None:
    failed = [o for r in results for o in r.failures]
    if not failed:
        return None
    first = failed[0]
    assert first.reason is not None
    more = f" (and {len(failed) - 1} more files)" if len(failed) > 1 else ""
    return Failure(
        reason=first.reason,
        message=first.detail + more,
        files=tuple(o.path for o in failed if o.path),
    )

"""Apply: carry out a plan's actions through the reconcilers, model by model.

Apply takes only the plan (and the means to act); it never re-plans.  A model whose action
fails is recorded as failed and the next model goes on.  A model's ref is pointed at its
commit only after every one of its actions succeeded, so applications resolving the
revision never land on a commit with missing or unverified files.  Its deletions come after
that, and only then.  The revision a switch leaves behind is not among them: retention plans
its deletion only once the ref has pointed away from it for a grace period, because an
application may have resolved a path in it just before the switch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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

PhaseListener = Callable[[dict[str, Phase], dict[str, Failure]], None]


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


def apply_plan(
    plan: Plan,
    workspace: Workspace,
    *,
    on_phase: PhaseListener | None = None,
    should_stop: Callable[[str], bool] | None = None,
) -> ApplyOutcome:
    """``on_phase`` is told each time a model enters or leaves a transfer phase.

    ``should_stop(model)`` is asked before each model; a model whose work is stopped
    meanwhile (the workspace raises :class:`~controller.system.cancel.Cancelled`) keeps its ref
    where it was and the next model goes on.
    """
    results: list[ActionResult] = []
    failures: dict[str, Failure] = {}
    in_progress: dict[str, Phase] = {}
    stopped: list[str] = []
    for model, actions in _by_model(plan.actions).items():
        if should_stop is not None and should_stop(model):
            stopped.append(model)
            continue
        transient = _transfer_phase(actions)
        if transient is not None:
            in_progress[model] = transient
            if on_phase:
                on_phase(dict(in_progress), dict(failures))
        work = [a for a in actions if a.kind is not ActionKind.DELETE]
        model_results, cancelled = _apply_model(work, workspace)
        if not cancelled and _failure(model_results) is None:
            if work:
                workspace.point_ref(work[-1])
            # Deletions run last, and only once the model's other work succeeded and its ref
            # moved (an old revision is planned only a grace period after its switch).
            deletions = [a for a in actions if a.kind is ActionKind.DELETE]
            deleted, cancelled = _apply_model(deletions, workspace)
            model_results.extend(deleted)
        results.extend(model_results)
        failure = _failure(model_results)
        if cancelled:
            log.info("%s: stopped at a safe point; partial files are kept", model)
            stopped.append(model)
        elif failure is not None:
            failures[model] = failure
        in_progress.pop(model, None)
        if on_phase:
            on_phase(dict(in_progress), dict(failures))
    return ApplyOutcome(tuple(results), failures, tuple(stopped))


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


def _apply_model(actions: list[Action], workspace: Workspace) -> tuple[list[ActionResult], bool]:
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

"""Apply: carry out a plan's actions through the reconcilers, model by model.

Apply takes only the plan (and the means to act); it never re-plans.  A model whose action
fails is recorded as failed and the next model goes on.  A model's ref is pointed at its
commit only after every one of its actions succeeded, so applications resolving the
revision never land on a commit with missing or unverified files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from controller.domain import Action, ActionKind, Phase, Plan, Reason
from controller.status import Failure
from reconcilers import download, integrity
from reconcilers.base import ActionResult, FileOutcome, Workspace

log = logging.getLogger("modelsync.apply")

_RECONCILERS = {
    ActionKind.DOWNLOAD: download.apply,
    ActionKind.UPDATE: download.apply,
    ActionKind.REPAIR: integrity.apply,
    ActionKind.VERIFY: integrity.apply,
}

PhaseListener = Callable[[dict[str, Phase], dict[str, Failure]], None]


@dataclass(frozen=True)
class ApplyOutcome:
    results: tuple[ActionResult, ...]
    failures: dict[str, Failure]

    @property
    def ok(self) -> bool:
        return not self.failures


def apply_plan(
    plan: Plan,
    workspace: Workspace,
    *,
    on_phase: PhaseListener | None = None,
) -> ApplyOutcome:
    """``on_phase`` is told each time a model enters or leaves a transfer phase."""
    results: list[ActionResult] = []
    failures: dict[str, Failure] = {}
    in_progress: dict[str, Phase] = {}
    for model, actions in _by_model(plan.actions).items():
        transient = _transfer_phase(actions)
        if transient is not None:
            in_progress[model] = transient
            if on_phase:
                on_phase(dict(in_progress), dict(failures))
        model_results = _apply_model(actions, workspace)
        results.extend(model_results)
        failure = _failure(model, model_results)
        if failure is None:
            workspace.point_ref(actions[-1])
        else:
            failures[model] = failure
        in_progress.pop(model, None)
        if on_phase:
            on_phase(dict(in_progress), dict(failures))
    return ApplyOutcome(tuple(results), failures)


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


def _apply_model(actions: list[Action], workspace: Workspace) -> list[ActionResult]:
    results = []
    for action in actions:
        log.info("%s %s: %s", action.kind.value, action.model, action.message)
        try:
            results.append(_RECONCILERS[action.kind](action, workspace))
        except OSError as e:
            # A full disk or a permission problem fails this model, not the whole run.
            outcome = FileOutcome(
                path="",
                ok=False,
                reason=_reason_for(action),
                detail=f"{action.kind.value} failed: {e.strerror or e}",
            )
            results.append(ActionResult(action, (outcome,)))
    return results


def _reason_for(action: Action) -> Reason:
    return Reason.DOWNLOAD_FAILED if action.kind is not ActionKind.VERIFY else Reason.CORRUPTED


def _failure(model: str, results: list[ActionResult]) -> Failure | None:
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

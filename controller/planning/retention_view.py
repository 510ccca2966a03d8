"""Retention as the status file and the ``status`` table show it: deletions, budget, unmanaged.

Derived from a plan (pure): what the next apply would delete, what retention recommends
(``mode: recommend``) or holds back (a model in use, an old revision within its grace period),
how the disk budget stands, and what in the cache is not modelsync's (never deleted, reported
with its size).
"""

from __future__ import annotations

from controller.domain import Action, ActionKind, Plan, Reason
from controller.domain.status import DeletionStatus, RetentionStatus, UnmanagedStatus
from controller.domain.units import human_bytes


def _deletion(action: Action, state: str, why: str | None = None) -> DeletionStatus:
    return DeletionStatus(
        model=action.model,
        repo=action.repo,
        commit=action.commit,
        bytes=action.bytes,
        reason=action.reason,
        message=action.message,
        state=state,  # type: ignore[arg-type]  # one of the literals above
        held_because=why,
    )


def from_plan(plan: Plan) -> RetentionStatus:
    deletions = [_deletion(a, "planned") for a in plan.actions if a.kind is ActionKind.DELETE]
    for w in plan.withheld:
        if w.action.kind is not ActionKind.DELETE:
            continue
        if w.reason is Reason.RECOMMEND_ONLY:
            deletions.append(_deletion(w.action, "recommended"))
        else:
            deletions.append(_deletion(w.action, "held", w.message))
    fit = plan.budget
    return RetentionStatus(
        mode=plan.retention_mode.value,
        budget_bytes=fit.budget if fit else None,
        budget_source=fit.source if fit else None,
        managed_bytes=fit.on_disk if fit else None,
        fits=fit.fits if fit else None,
        deletions=tuple(deletions),
        unmanaged=tuple(
            UnmanagedStatus(repo=u.repo, size_on_disk=u.bytes, commits=u.commits)
            for u in plan.unmanaged
        ),
    )


def to_lines(view: RetentionStatus) -> list[str]:
    """Lines for the ``reconcile status`` table, below the models."""
    lines: list[str] = []
    if view.budget_bytes is not None and view.managed_bytes is not None:
        fits = "fits" if view.fits else "DOES NOT FIT"
        lines.append(
            f"Disk budget: {human_bytes(view.managed_bytes)} managed of "
            f"{human_bytes(view.budget_bytes)} ({view.budget_source}); after the plan: {fits}"
        )
    for d in view.deletions:
        state = {"planned": "to delete", "recommended": "recommended", "held": "held back"}
        why = f" [{d.held_because}]" if d.held_because else ""
        lines.append(
            f"{state[d.state]}: {d.model} {d.commit[:12]} ({d.reason.value}, "
            f"{human_bytes(d.bytes)}){why}"
        )
    for u in view.unmanaged:
        lines.append(
            f"unmanaged (not modelsync's, never deleted): {u.repo} {human_bytes(u.size_on_disk)}"
        )
    return lines

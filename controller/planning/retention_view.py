"""Retention as the status file and the ``status`` table show it: deletions, budget, unmanaged.

Derived from a plan (pure): what the next apply would delete, what retention recommends
(``mode: recommend``) or holds back (a model in use, an old revision within its grace period),
how the disk budget stands, and what in the cache is not modelsync's (never deleted, reported
with its size).
"""

from __future__ import annotations

from dataclasses import replace

from controller.domain import Action, ActionKind, BudgetFit, Plan, Reason, RetentionMode
from controller.domain.status import (
    DeletionStatus,
    QuarantineStatus,
    RetentionStatus,
    UnmanagedStatus,
)
from controller.domain.units import human_bytes, plural


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
    fit = None if plan.budget is None else _applied(plan.budget, plan.retention_mode)
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
        quarantined_bytes=sum(q.bytes for q in plan.quarantined),
        quarantined_files=sum(q.files for q in plan.quarantined),
        quarantined=tuple(
            QuarantineStatus(repo=q.repo, files=q.files, bytes=q.bytes) for q in plan.quarantined
        ),
    )


def budget_line(fit: BudgetFit, mode: RetentionMode = RetentionMode.ENFORCE) -> str:
    """The plan's disk budget in one line, each size once and for people: the exact bytes
    are in the plan's JSON (``budget``), where a program compares them.  In ``recommend``
    mode no deletion is carried out, so none is subtracted; what they would free is said
    beside."""
    recommended = fit.freed if mode is RetentionMode.RECOMMEND else 0
    fit = _applied(fit, mode)
    freed = f" - {human_bytes(fit.freed)} freed" if fit.freed else ""
    line = (
        f"Disk budget: {human_bytes(fit.on_disk)} on disk + {human_bytes(fit.transfers)} to "
        f"transfer{freed} = {human_bytes(fit.total)} of {human_bytes(fit.budget)} "
        f"({fit.source}): {_verdict(fit.fits, fit.total - fit.budget)}"
    )
    if recommended:
        line += f"; the recommended deletions would free {human_bytes(recommended)}"
    return line + "."


def _applied(fit: BudgetFit, mode: RetentionMode) -> BudgetFit:
    """The fit of what the plan will do: recommended deletions free nothing."""
    return replace(fit, freed=0) if mode is RetentionMode.RECOMMEND else fit


def _verdict(fits: bool | None, excess: int | None = None) -> str:
    if fits:
        return "fits"
    if excess is not None:
        return f"DOES NOT FIT, {human_bytes(excess)} over"
    return "DOES NOT FIT"


def to_lines(view: RetentionStatus) -> list[str]:
    """Lines for the ``reconcile status`` table, below the models."""
    lines: list[str] = []
    if view.budget_bytes is not None and view.managed_bytes is not None:
        lines.append(
            f"Disk budget: {human_bytes(view.managed_bytes)} on disk of "
            f"{human_bytes(view.budget_bytes)} ({view.budget_source}); after the plan: "
            f"{_verdict(view.fits)}."
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
    for q in view.quarantined:
        lines.append(f"quarantined (damaged, in no snapshot): {q.repo} {_files_and_bytes(q)}")
    return lines


def _files_and_bytes(q: QuarantineStatus) -> str:
    return f"{plural(q.files, 'file')}, {human_bytes(q.bytes)}"

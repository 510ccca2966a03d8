"""The planner: a pure function from desired and observed state to an ordered plan.

It asks each reconciler for its proposals, then orders them.  No I/O and no clock reads
happen here (``now`` is passed in); the import-linter contract in pyproject.toml keeps it
that way, so the same inputs always give the same plan in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from controller.domain import (
    TRANSFER_KINDS,
    Action,
    ActionKind,
    DesiredModel,
    DesiredState,
    Observation,
    Plan,
    Reason,
    RetentionMode,
    UsageStats,
    Withheld,
)
from controller.domain.assessment import Assessment, assess
from controller.domain.budget import Budget, from_percent
from controller.domain.budget import numbers as budget_numbers
from controller.domain.units import human_bytes
from controller.domain.usage import effective_priority, priority_reason, uses_per_day
from reconcilers import download, integrity, retention

__all__ = ["QueueEntry", "assess_all", "effective_priority", "plan", "queue"]

# Work order across models.  Repairs come first: a damaged model is one an application
# may be loading right now.  Verifications are next because they make models that are
# already on disk AVAILABLE in minutes, where downloads take hours.  Then downloads and
# updates, most important first; deletions come last, after everything they could
# make room for has been planned.
_KIND_ORDER = {
    ActionKind.REPAIR: 0,
    ActionKind.VERIFY: 1,
    ActionKind.DOWNLOAD: 2,
    ActionKind.UPDATE: 2,
    ActionKind.DELETE: 3,
}


def assess_all(desired: DesiredState, observed: Observation) -> tuple[Assessment, ...]:
    return tuple(assess(m, observed) for m in desired.models)


def plan(
    desired: DesiredState,
    observed: Observation,
    now: datetime,
    *,
    assessments: tuple[Assessment, ...] | None = None,
    budget: Budget | None = None,
) -> Plan:
    """Ordered by kind, then effective priority (from ``observed.usage``), usage, name;
    retention's deletions come last, in the order it chose them.

    ``assessments`` is ``assess_all(desired, observed)`` when the caller has it already.
    ``budget`` is the disk budget (``--budget-bytes``); by default it is
    ``retention.max_storage_usage_percent`` of the observed disk, and none when the disk is
    unknown.
    """
    if assessments is None:
        assessments = assess_all(desired, observed)
    proposals, held = _hold_in_use(
        [*integrity.plan(assessments), *download.plan(assessments)], assessments, observed
    )
    models = {m.name: m for m in desired.models}
    ordered = [
        _with_priority(a, models[a.model], observed.usage)
        for a in sorted(proposals, key=lambda a: _order_key(a, models[a.model], observed.usage))
    ]
    if budget is None and observed.disk is not None:
        budget = from_percent(desired.retention.max_storage_usage_percent, observed.disk)
    cleanup = retention.plan(desired, observed, assessments, now, proposals=ordered, budget=budget)
    deletions = [
        _with_priority(a, models[a.model], observed.usage) if a.model in models else a
        for a in cleanup.deletions
    ]
    withheld = [*held, *cleanup.withheld]
    errors, warnings = _problems(assessments)
    errors.extend(_fit(ordered, observed))
    errors.extend(cleanup.errors)
    warnings.extend(cleanup.warnings)
    if desired.retention.mode is RetentionMode.RECOMMEND and deletions:
        withheld.extend(
            Withheld(a, Reason.RECOMMEND_ONLY, "retention.mode is recommend: not applied")
            for a in deletions
        )
        fit = cleanup.fit
        if fit is not None and fit.fits and not replace(fit, freed=0).fits:
            warnings.append(
                "the plan fits the disk budget only once the recommended deletions are made: "
                f"{budget_numbers(fit)}"
            )
        deletions = []
    return Plan(
        actions=(*ordered, *deletions),
        generation=desired.generation,
        created_at=now,
        warnings=(*observed.problems, *warnings),
        errors=tuple(errors),
        disk=observed.disk,
        withheld=tuple(withheld),
        unmanaged=cleanup.unmanaged,
        quarantined=cleanup.quarantined,
        budget=cleanup.fit,
        retention_mode=desired.retention.mode,
    )


def _hold_in_use(
    actions: list[Action], assessments: tuple[Assessment, ...], observed: Observation
) -> tuple[list[Action], list[Withheld]]:
    """A model under a live lease keeps the commit its ref serves: an update that would
    switch the ref waits (and the plan says so) until the lease ends."""
    switching = {
        a.model.name: a.served_commit
        for a in assessments
        if a.in_use and a.served_commit is not None and a.served_commit != a.commit
    }
    kept: list[Action] = []
    held: list[Withheld] = []
    for action in actions:
        served = switching.get(action.model)
        if action.kind is ActionKind.UPDATE and served is not None:
            holders = ", ".join(sorted({x.holder for x in observed.leases[action.model]}))
            held.append(
                Withheld(
                    action,
                    Reason.IN_USE,
                    f"in use ({holders}); refs/{action.revision} stays at {served[:12]} until "
                    "the lease ends",
                )
            )
        else:
            kept.append(action)
    return kept, held


def _order_key(
    action: Action, model: DesiredModel, usage: Mapping[str, UsageStats]
) -> tuple[int, int, float, str, int]:
    uses = uses_per_day(usage, model.name)
    return (
        _KIND_ORDER[action.kind],
        effective_priority(model, uses).rank,
        -uses,
        model.name,
        list(ActionKind).index(action.kind),
    )


def _with_priority(action: Action, model: DesiredModel, usage: Mapping[str, UsageStats]) -> Action:
    uses = uses_per_day(usage, model.name)
    return replace(
        action,
        priority=effective_priority(model, uses),
        priority_reason=priority_reason(model, uses),
    )


@dataclass(frozen=True)
class QueueEntry:
    """A model's place in the order ``apply`` will work through a plan."""

    position: int  # 1-based
    bytes_ahead: int  # bytes the models before it transfer first
    bytes: int  # bytes it transfers itself

    @property
    def bytes_until_done(self) -> int:
        return self.bytes_ahead + self.bytes


def queue(the_plan: Plan) -> dict[str, QueueEntry]:
    """Each model with work in the plan, in the order apply takes them.

    Apply runs all of a model's actions when it first meets the model, so a model's place is
    that of its first action, and what waits ahead of it is the transfers of the models
    before it.
    """
    totals: dict[str, int] = {}
    for a in the_plan.actions:  # dicts keep insertion order: the order of first appearance
        if a.kind is ActionKind.DELETE:
            continue  # the queue is of work that makes models available
        transfer = a.bytes if a.kind in TRANSFER_KINDS else 0
        totals[a.model] = totals.get(a.model, 0) + transfer
    entries: dict[str, QueueEntry] = {}
    ahead = 0
    for position, (model, transfer) in enumerate(totals.items(), start=1):
        entries[model] = QueueEntry(position=position, bytes_ahead=ahead, bytes=transfer)
        ahead += transfer
    return entries


def _problems(assessments: tuple[Assessment, ...]) -> tuple[list[str], list[str]]:
    """Hub problems are errors when they leave a model's plan unknown, else warnings."""
    errors: list[str] = []
    warnings: list[str] = []
    for a in assessments:
        if a.model.suspend:
            if a.paused:
                warnings.append(
                    f"{a.model.name}: paused through the API; nothing is planned for it until "
                    "it is resumed"
                )
            continue
        if a.problem is not None:
            line = f"{a.model.name}: {a.problem.message}"
            if a.commit is not None:
                warnings.append(f"{line} (planned against the cached snapshot)")
            elif not a.on_demand_unrequested:
                errors.append(line)
        elif a.hub_stale:
            warnings.append(
                f"{a.model.name}: hub not consulted (offline or unreachable); "
                "planned against its last answer"
            )
        elif a.nothing_selected:
            errors.append(f"{a.model.name}: {a.model.nothing_selected()}")
    return errors, warnings


def _fit(actions: list[Action], observed: Observation) -> list[str]:
    """Refuse a plan whose transfers cannot fit the cache's filesystem.

    Failing up front is kinder than filling the disk halfway through a 60 GB model and
    leaving the other models on that disk short of space.
    """
    if observed.disk is None:
        return []
    # Deletions run after the transfers (they come last), so they make no room for them.
    needed = sum(a.bytes for a in actions if a.kind in TRANSFER_KINDS)
    if needed <= observed.disk.free:
        return []
    return [
        f"the plan transfers {human_bytes(needed)} but only {human_bytes(observed.disk.free)} "
        f"is free on the cache's filesystem; free {human_bytes(needed - observed.disk.free)} "
        "or narrow the models' include patterns"
    ]

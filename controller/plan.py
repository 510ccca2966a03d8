"""The planner: a pure function from desired and observed state to an ordered plan.

It asks each reconciler for its proposals, then orders them.  No I/O and no clock reads
happen here (``now`` is passed in); the import-linter contract in pyproject.toml keeps it
that way, so the same inputs always give the same plan in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from controller.assess import Assessment, assess
from controller.domain import (
    Action,
    ActionKind,
    DesiredModel,
    DesiredState,
    Observation,
    Plan,
    Priority,
)
from controller.units import human_bytes
from reconcilers import download, integrity

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
    usage: Mapping[str, float] | None = None,
) -> Plan:
    """``usage`` maps a model name to its uses per day (absent means never used)."""
    usage = usage or {}
    assessments = assess_all(desired, observed)
    proposals = [*integrity.plan(assessments), *download.plan(assessments)]
    models = {m.name: m for m in desired.models}
    ordered = sorted(proposals, key=lambda a: _order_key(a, models[a.model], usage))
    errors, warnings = _problems(assessments)
    errors.extend(_fit(ordered, observed))
    return Plan(
        actions=tuple(ordered),
        generation=desired.generation,
        created_at=now,
        warnings=(*observed.problems, *warnings),
        errors=tuple(errors),
        disk=observed.disk,
    )


def effective_priority(model: DesiredModel, uses_per_day: float) -> Priority:
    """Usage raises a priority to a floor (>1/day high, >0.1/day medium); it never lowers one."""
    if uses_per_day > 1:
        floor = Priority.HIGH
    elif uses_per_day > 0.1:
        floor = Priority.MEDIUM
    else:
        floor = Priority.LOW
    if model.priority is Priority.AUTO:
        return floor
    return model.priority if model.priority.rank <= floor.rank else floor


def _order_key(
    action: Action, model: DesiredModel, usage: Mapping[str, float]
) -> tuple[int, int, float, str, int]:
    uses = usage.get(model.name, 0.0)
    return (
        _KIND_ORDER[action.kind],
        effective_priority(model, uses).rank,
        -uses,
        model.name,
        list(ActionKind).index(action.kind),
    )


def _problems(assessments: tuple[Assessment, ...]) -> tuple[list[str], list[str]]:
    """Hub problems are errors when they leave a model's plan unknown, else warnings."""
    errors: list[str] = []
    warnings: list[str] = []
    for a in assessments:
        if a.model.suspend:
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
        elif a.commit is not None and not a.files:
            errors.append(
                f"{a.model.name}: no file of {a.model.repo}@{a.model.revision} "
                f"matches include {list(a.model.include)} / exclude "
                f"{list(a.model.exclude)}"
            )
    return errors, warnings


def _fit(actions: list[Action], observed: Observation) -> list[str]:
    """Refuse a plan whose transfers cannot fit the cache's filesystem.

    Failing up front is kinder than filling the disk halfway through a 60 GB model and
    leaving the other models on that disk short of space.
    """
    if observed.disk is None:
        return []
    needed = sum(a.bytes for a in actions if a.kind is not ActionKind.VERIFY)
    if needed <= observed.disk.free:
        return []
    return [
        f"the plan transfers {human_bytes(needed)} but only {human_bytes(observed.disk.free)} "
        f"is free on the cache's filesystem; free {human_bytes(needed - observed.disk.free)} "
        "or narrow the models' include patterns"
    ]

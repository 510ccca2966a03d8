"""Usage, derived: from usage records to per-model statistics and effective priorities.

Pure functions only (no clock, no database: ``now`` and the rows are passed in); the
import-linter contract in pyproject.toml keeps it that way.  The state store does the
counting in SQL (:meth:`controller.store.usage.Usage.usage_aggregates`) because a busy
machine records tens of thousands of uses a month; :func:`aggregate` is the same
computation over plain rows, which defines what the SQL must return.

Definitions
    uses per day
        uses within the window divided by the window's length in days (30 by default), so a
        model tried twice on the day it was installed is not instantly "high".
    average generation time
        mean of the generation times reported with uses in the window (uses without one do
        not count).
    performance score
        the window's average generation time divided by the average over the last
        :data:`RECENT_DAYS`, capped at 1.0: 1.0 means the model generates as fast as usual
        (or faster), 0.5 that it recently takes twice as long as its norm (a slower disk, a
        contended GPU, a regressed revision).  ``None`` without recent timings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.domain import DesiredModel, Priority, UsageStats

RECENT_DAYS = 7
# The seed's floors: more than this many uses per day raises an auto priority to the level.
HIGH_USES_PER_DAY = 1.0
MEDIUM_USES_PER_DAY = 0.1


@dataclass(frozen=True)
class UsageEvent:
    """One use of a model, as recorded."""

    model: str
    at: datetime
    generation_seconds: float | None = None


@dataclass(frozen=True)
class UsageAggregate:
    """The sums one model's usage rows reduce to; what the state store returns."""

    model: str
    uses: int
    last_used: datetime | None
    timed_uses: int  # uses that reported a generation time
    generation_total: float  # seconds, summed over timed uses
    recent_timed_uses: int  # the same two, over the recent window only
    recent_generation_total: float


def window_start(now: datetime, window_days: int) -> datetime:
    """Uses before this instant are outside the window (and pruned from the store)."""
    return now - timedelta(days=window_days)


def recent_start(now: datetime, window_days: int) -> datetime:
    return now - timedelta(days=min(RECENT_DAYS, window_days))


def aggregate(
    events: Iterable[UsageEvent], *, since: datetime, recent_since: datetime
) -> dict[str, UsageAggregate]:
    """Reduce rows to per-model sums, counting uses at or after ``since``."""
    sums: dict[str, list[float]] = {}
    last: dict[str, datetime] = {}
    for e in events:
        if e.at < since:
            continue
        s = sums.setdefault(e.model, [0, 0, 0.0, 0, 0.0])
        s[0] += 1
        if e.model not in last or e.at > last[e.model]:
            last[e.model] = e.at
        if e.generation_seconds is not None:
            s[1] += 1
            s[2] += e.generation_seconds
            if e.at >= recent_since:
                s[3] += 1
                s[4] += e.generation_seconds
    return {
        model: UsageAggregate(
            model=model,
            uses=int(s[0]),
            last_used=last.get(model),
            timed_uses=int(s[1]),
            generation_total=s[2],
            recent_timed_uses=int(s[3]),
            recent_generation_total=s[4],
        )
        for model, s in sorted(sums.items())
    }


def stats(agg: UsageAggregate, *, window_days: int) -> UsageStats:
    average = agg.generation_total / agg.timed_uses if agg.timed_uses else None
    return UsageStats(
        uses=agg.uses,
        uses_per_day=agg.uses / window_days,
        last_used=agg.last_used,
        average_generation_seconds=average,
        performance_score=_performance(agg, average),
    )


def derive(aggregates: Iterable[UsageAggregate], *, window_days: int) -> dict[str, UsageStats]:
    """Per-model statistics; a model that was not used in the window is absent."""
    if window_days <= 0:
        raise ValueError(f"a usage window of {window_days} days is empty")
    return {a.model: stats(a, window_days=window_days) for a in aggregates if a.uses > 0}


def _performance(agg: UsageAggregate, average: float | None) -> float | None:
    if average is None or not agg.recent_timed_uses:
        return None
    recent = agg.recent_generation_total / agg.recent_timed_uses
    if recent <= 0:
        return 1.0
    return round(min(1.0, average / recent), 4)


def uses_per_day(usage: Mapping[str, UsageStats], model: str) -> float:
    found = usage.get(model)
    return found.uses_per_day if found is not None else 0.0


# --------------------------------------------------------------------------- priorities


def usage_floor(uses: float) -> Priority:
    """The priority usage alone earns: >1/day high, >0.1/day medium, else low."""
    if uses > HIGH_USES_PER_DAY:
        return Priority.HIGH
    if uses > MEDIUM_USES_PER_DAY:
        return Priority.MEDIUM
    return Priority.LOW


def effective_priority(model: DesiredModel, uses: float) -> Priority:
    """Usage raises a priority to its floor; it never lowers a declared one."""
    return raised_priority(model.priority, uses)


def raised_priority(declared: Priority, uses: float) -> Priority:
    """:func:`effective_priority` from the declared priority alone, for a status file's
    entry, which records the declared priority but not the rest of the model."""
    floor = usage_floor(uses)
    if declared is Priority.AUTO:
        return floor
    return declared if declared.rank <= floor.rank else floor


def priority_reason(model: DesiredModel, uses: float) -> str:
    """Why ``model`` has its effective priority, for plans and status messages."""
    effective = effective_priority(model, uses)
    rate = f"{format_rate(uses)} uses/day"
    if model.priority is Priority.AUTO:
        return f"priority {effective.value} (auto: {rate})"
    if effective is model.priority:
        return f"priority {effective.value} (declared)"
    return f"priority {effective.value} (declared {model.priority.value}, raised by usage: {rate})"


def format_rate(uses: float) -> str:
    if 0 < uses < 0.01:
        return f"{uses:.2g}"
    return f"{uses:.2f}".rstrip("0").rstrip(".")

"""A status file's entries with usage and leases as the state store says now (pure)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.domain import Phase, Reason, UsageStats
from controller.domain.status import ModelStatus, StatusReport, StatusSummary
from controller.planning.status import with_live_usage
from tests.support.factories import C1, NOW

BUSY = UsageStats(
    uses=60,
    uses_per_day=2.0,
    last_used=NOW - timedelta(hours=1),
    average_generation_seconds=12.345678912,
    performance_score=0.8,
)
RARE = UsageStats(
    uses=3, uses_per_day=0.1, last_used=NOW, average_generation_seconds=None, performance_score=None
)


def entry(name: str, priority: str = "auto", **was: object) -> ModelStatus:
    return ModelStatus(
        name=name,
        repo=f"org/{name}",
        revision="main",
        commit=C1,
        phase=Phase.AVAILABLE,
        reason=Reason.VERIFIED,
        message="2 files, 1.0 kB, verified",
        size_on_disk=1010,
        expected_size=1010,
        integrity_score=1.0,
        priority=priority,
        policy="always",
        last_checked=NOW - timedelta(days=1),
        **was,  # type: ignore[arg-type]
    )


def report(*models: ModelStatus) -> StatusReport:
    summary = StatusSummary(
        models=len(models),
        phases={"AVAILABLE": len(models)},
        size_on_disk=0,
        expected_size=0,
        ready=True,
    )
    return StatusReport(
        observedGeneration="g1", updatedAt=NOW - timedelta(days=1), summary=summary, models=models
    )


USAGE_FIELDS = (
    "usage_frequency",
    "last_used",
    "average_generation_seconds",
    "performance_score",
    "effective_priority",
    "in_use",
)

CASES = [
    (
        "used since the pass: auto is raised to high, and it is in use now",
        entry("a"),
        BUSY,
        True,
        (2.0, BUSY.last_used, 12.345679, 0.8, "high", True),
    ),
    (
        "a declared priority is raised, never lowered",
        entry("a", "critical"),
        RARE,
        False,
        (0.1, NOW, None, None, "critical", False),
    ),
    (
        "uses the file counted are gone (out of the window, or no database): nothing left",
        entry(
            "a",
            "medium",
            usage_frequency=2.0,
            last_used=NOW,
            effective_priority="high",
            in_use=True,
        ),
        None,
        False,
        (0.0, None, None, None, "medium", False),
    ),
    (
        "a declared priority modelsync does not know keeps the file's effective one",
        entry("a", "urgent", effective_priority="critical"),
        BUSY,
        False,
        (2.0, BUSY.last_used, 12.345679, 0.8, "critical", False),
    ),
]


@pytest.mark.parametrize(
    ("was", "used", "leased", "now"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_usage_and_leases_are_laid_over_the_files_entry(
    was: ModelStatus, used: UsageStats | None, leased: bool, now: tuple[object, ...]
) -> None:
    other = entry("b", "low")
    before = report(was, other)
    usage = {} if used is None else {"a": used}
    after = with_live_usage(before, usage, {"a"} if leased else set())
    shown = after.models[0]
    assert tuple(getattr(shown, f) for f in USAGE_FIELDS) == now
    # Everything else is the file's, as written.
    assert shown.model_dump(exclude=set(USAGE_FIELDS)) == was.model_dump(exclude=set(USAGE_FIELDS))
    assert after.models[1] == other.model_copy(update={"effective_priority": "low"})
    assert after.model_dump(exclude={"models"}) == before.model_dump(exclude={"models"})

"""Quarantined bytes: counted, shown, and deleted by retention once their grace period is over.

Planned from tables (the fake workspace's cache in, the plan out), then applied through the
fake workspace and planned again: what a case deletes is gone, and nothing else is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest

from controller.domain import (
    Action,
    ActionKind,
    DesiredModel,
    FileWork,
    Plan,
    Reason,
    RetentionMode,
    RetentionPolicy,
)
from controller.domain.budget import Budget
from controller.planning.planner import plan
from reconcilers import integrity, retention
from tests.support.factories import C1, NOW, desired
from tests.support.workspace import FakeWorkspace, digest

FILES = {"config.json": b'{"hidden_size": 8}', "model.safetensors": bytes(range(256)) * 4}
MODEL = DesiredModel(name="a", repo="org/a")
DAMAGED = b"bad bytes " * 10  # 100 bytes
OTHER_DAMAGED = b"other bad bytes " * 5  # 80 bytes
DAY = timedelta(days=1)


@dataclass
class Case:
    """Model ``a`` present and verified; ``quarantined`` maps content to its time moved aside."""

    quarantined: dict[bytes, datetime]
    models: tuple[DesiredModel, ...] = (MODEL,)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    repo: str = "org/a"


def world(case: Case) -> FakeWorkspace:
    fake = FakeWorkspace(NOW)
    fake.publish("org/a", C1, FILES)
    fake.put("org/a", C1, FILES, owner="a")
    for content, since in case.quarantined.items():
        fake.put_quarantined(case.repo, content, since)
    return fake


def plan_of(case: Case, fake: FakeWorkspace, budget: int | None = None) -> Plan:
    wanted = replace(desired(*case.models), retention=case.retention)
    chosen = None if budget is None else Budget(budget, "--budget-bytes")
    return plan(wanted, fake.observation(wanted), NOW, budget=chosen)


def expired(p: Plan) -> list[tuple[str, str, int, int]]:
    """(model, repo, files, bytes) of each quarantine deletion the plan carries out."""
    return [
        (a.model, a.repo, len(a.files), a.bytes)
        for a in p.actions
        if a.kind is ActionKind.DELETE and a.reason is Reason.QUARANTINE_EXPIRED
    ]


# Each case: the world; the deletions planned (model, repo, files, bytes); what the plan
# reports as quarantined (repo, files, bytes, expiring).
CASES = [
    pytest.param(
        Case({DAMAGED: NOW - 8 * DAY}),
        [("a", "org/a", 1, 100)],
        [("org/a", 1, 100, 1)],
        id="past-the-default-7-days-goes",
    ),
    pytest.param(
        Case({DAMAGED: NOW - 6 * DAY}),
        [],
        [("org/a", 1, 100, 0)],
        id="within-the-default-7-days-stays-and-is-shown",
    ),
    pytest.param(
        Case({DAMAGED: NOW - 7 * DAY}),
        [("a", "org/a", 1, 100)],
        [("org/a", 1, 100, 1)],
        id="exactly-at-the-grace-goes",
    ),
    pytest.param(
        Case(
            {DAMAGED: NOW - timedelta(minutes=2)},
            retention=RetentionPolicy(quarantine_grace=timedelta(minutes=1)),
        ),
        [("a", "org/a", 1, 100)],
        [("org/a", 1, 100, 1)],
        id="a-short-grace-from-the-manifest",
    ),
    pytest.param(
        Case({DAMAGED: NOW - 8 * DAY, OTHER_DAMAGED: NOW - DAY}),
        [("a", "org/a", 1, 100)],
        [("org/a", 2, 180, 1)],
        id="only-the-expired-of-two",
    ),
    pytest.param(
        Case({DAMAGED: NOW - 8 * DAY}, models=(replace(MODEL, suspend=True),)),
        [],
        [("org/a", 1, 100, 1)],
        id="a-suspended-models-repo-is-left-alone",
    ),
    pytest.param(
        Case({DAMAGED: NOW - 8 * DAY}, repo="org/gone"),
        [("org/gone", "org/gone", 1, 100)],
        [("org/gone", 1, 100, 1)],
        id="a-repo-no-manifest-declares-any-more",
    ),
    pytest.param(
        Case({}),
        [],
        [],
        id="no-quarantine-nothing-shown",
    ),
]


@pytest.mark.parametrize(("case", "deleted", "shown"), CASES)
def test_quarantine_table(
    case: Case,
    deleted: list[tuple[str, str, int, int]],
    shown: list[tuple[str, int, int, int]],
) -> None:
    fake = world(case)
    p = plan_of(case, fake)
    assert expired(p) == deleted
    assert [(q.repo, q.files, q.bytes, q.expiring) for q in p.quarantined] == shown
    # Carried out through the workspace, the plan leaves exactly the unexpired bytes.
    for action in p.actions:
        assert retention.apply(action, fake).ok
    left = sum(q[2] for q in shown) - sum(d[3] for d in deleted)
    assert sum(len(c) for c in fake.quarantined.values()) == left
    assert fake.files("org/a", C1) == FILES  # the model itself is untouched
    again = plan_of(case, fake)
    assert expired(again) == []


def test_quarantined_bytes_count_toward_the_budget() -> None:
    model_bytes = sum(len(c) for c in FILES.values())
    case = Case({DAMAGED: NOW - DAY})
    fit = plan_of(case, world(case), budget=model_bytes + 100).budget
    assert fit is not None and fit.on_disk == model_bytes + 100 and fit.fits
    tight = plan_of(case, world(case), budget=model_bytes + 99)
    assert tight.budget is not None and not tight.budget.fits and tight.errors


def test_expired_quarantine_frees_room_in_the_budget() -> None:
    model_bytes = sum(len(c) for c in FILES.values())
    case = Case({DAMAGED: NOW - 8 * DAY})
    p = plan_of(case, world(case), budget=model_bytes)
    assert p.budget is not None and p.budget.freed == 100 and p.budget.fits and not p.errors


def test_recommend_mode_only_recommends_the_deletion() -> None:
    case = Case({DAMAGED: NOW - 8 * DAY}, retention=RetentionPolicy(mode=RetentionMode.RECOMMEND))
    p = plan_of(case, world(case))
    assert expired(p) == []
    assert [(w.action.reason, w.reason) for w in p.withheld] == [
        (Reason.QUARANTINE_EXPIRED, Reason.RECOMMEND_ONLY)
    ]


def test_the_deletion_names_the_files_and_the_grace() -> None:
    case = Case({DAMAGED: NOW - 8 * DAY, OTHER_DAMAGED: NOW - 9 * DAY})
    fake = world(case)
    (action,) = [a for a in plan_of(case, fake).actions if a.kind is ActionKind.DELETE]
    blobs = sorted((digest(DAMAGED), digest(OTHER_DAMAGED)))
    sizes = {digest(DAMAGED): 100, digest(OTHER_DAMAGED): 80}
    # (The planner adds the model's priority; retention's part is the rest.)
    assert replace(action, priority=None, priority_reason="") == Action(
        kind=ActionKind.DELETE,
        model="a",
        repo="org/a",
        revision="",  # quarantined bytes belong to no commit and no ref
        commit="",
        files=tuple(FileWork(f".quarantine/{b}", sizes[b], b) for b in blobs),
        bytes=180,
        reason=Reason.QUARANTINE_EXPIRED,
        message=(
            "2 damaged files quarantined since 2026-11-17 12:00:00 UTC, over "
            "retention.quarantine_grace 7 days; frees 180 B"
        ),
    )
    result = retention.apply(action, fake)
    assert result.action == action and result.ok and not fake.quarantined


def test_quarantine_and_other_deletions_free_room_together() -> None:
    case = Case({DAMAGED: NOW - 8 * DAY})
    fake = world(case)
    fake.put("org/gone", C1, {"old.bin": b"x" * 1000}, owner="gone")
    p = plan_of(case, fake, budget=1)
    assert p.budget is not None and p.budget.freed == 1100


def test_a_file_the_apply_quarantines_is_dated_by_the_move() -> None:
    """Damage found while verifying is moved aside at the workspace's ``now``: the grace
    period counts from then, not from when the blob was written."""
    fake = world(Case({}))
    fake.damage("org/a", C1, "model.safetensors", b"x" * 1024)
    wanted = desired(MODEL)
    first = plan(wanted, fake.observation(wanted), NOW)
    for action in first.actions:
        integrity.apply(action, fake)
    (moved,) = fake.observation(wanted).cache["org/a"].quarantined
    assert moved.since == NOW and moved.size == 1024

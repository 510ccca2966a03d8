"""The integrity reconciler against an in-memory workspace: verifying, and repairing.

Each case sets up a cache (files unverified, or damaged with or without a health check having
noticed), plans from it (``integrity.plan``), applies the one action, and checks the result
and what is left: the bytes an application would load, what is verified, what went to the
quarantine.  Damaged bytes must never stay where an application loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from controller.domain import Action, ActionKind, DesiredModel, Reason
from controller.planning.planner import assess_all
from controller.system.cancel import Cancelled
from reconcilers import integrity
from tests.support.factories import C1, NOW, desired
from tests.support.workspace import FakeWorkspace

REPO = "org/m"
CONFIG = b'{"hidden_size": 8}'
WEIGHTS = bytes(range(256)) * 4
TOKENIZER = b"tokenizer" * 10
FILES = {"config.json": CONFIG, "model.safetensors": WEIGHTS, "tokenizer.json": TOKENIZER}
ROTTEN = bytes(reversed(WEIGHTS))  # the weights' size, other bytes
MODEL = DesiredModel(name="m", repo=REPO)


def only_action(fake: FakeWorkspace) -> Action:
    wanted = desired(MODEL)
    actions = integrity.plan(assess_all(wanted, fake.observation(wanted)))
    assert len(actions) == 1, actions
    return actions[0]


def scene(*, verified: bool = True) -> FakeWorkspace:
    fake = FakeWorkspace(NOW)
    fake.publish(REPO, C1, FILES)
    fake.put(REPO, C1, FILES, owner="m", verified=verified)
    return fake


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[FakeWorkspace], None]
    kind: ActionKind
    # Per file of the action: the failure reason (None: ok), and whether the result says what
    # was wrong with it before it was fetched again (damage found by this very check).
    outcomes: Mapping[str, tuple[Reason | None, bool]]
    present: Mapping[str, bytes]  # what the snapshot serves afterwards (all of it verified)
    quarantined: tuple[bytes, ...] = ()
    transferred: int = 0
    refused: Mapping[str, Reason] = field(default_factory=dict)
    served_instead: Mapping[str, bytes] = field(default_factory=dict)


def _rot(fake: FakeWorkspace) -> None:
    fake.damage(REPO, C1, "model.safetensors", ROTTEN)


def _rot_noticed(fake: FakeWorkspace) -> None:
    fake.damage(REPO, C1, "model.safetensors", ROTTEN, noticed=True)


def _truncate(fake: FakeWorkspace) -> None:
    fake.damage(REPO, C1, "model.safetensors", WEIGHTS[:100])


def _unverify(fake: FakeWorkspace) -> None:
    fake.verified.clear()


def _unverify_and_rot(fake: FakeWorkspace) -> None:
    _unverify(fake)
    _rot(fake)


ALL_OK = {p: (None, False) for p in FILES}
WITHOUT_WEIGHTS = {p: c for p, c in FILES.items() if p != "model.safetensors"}

CASES = [
    Case("unverified and sound: verified in place", _unverify, ActionKind.VERIFY, ALL_OK, FILES),
    Case(
        "damage found while verifying: fetched again in the same pass",
        _unverify_and_rot,
        ActionKind.VERIFY,
        {**ALL_OK, "model.safetensors": (None, True)},
        FILES,
        quarantined=(ROTTEN,),
        transferred=len(WEIGHTS),
    ),
    Case(
        "damage found while verifying, and the hub refuses the file: out of the snapshot",
        _unverify_and_rot,
        ActionKind.VERIFY,
        {**ALL_OK, "model.safetensors": (Reason.ACCESS_DENIED, True)},
        WITHOUT_WEIGHTS,
        quarantined=(ROTTEN,),
        refused={"model.safetensors": Reason.ACCESS_DENIED},
    ),
    Case(
        "damage a health check noticed: repaired, only that file travels",
        _rot_noticed,
        ActionKind.REPAIR,
        {"model.safetensors": (None, False)},
        FILES,
        quarantined=(ROTTEN,),
        transferred=len(WEIGHTS),
    ),
    Case(
        "a truncated file: repaired",
        _truncate,
        ActionKind.REPAIR,
        {"model.safetensors": (None, False)},
        FILES,
        quarantined=(WEIGHTS[:100],),
        transferred=len(WEIGHTS),
    ),
    Case(
        "a repair the hub answers with other bytes: the damaged file is gone all the same",
        _rot_noticed,
        ActionKind.REPAIR,
        {"model.safetensors": (Reason.CHECKSUM_MISMATCH, False)},
        WITHOUT_WEIGHTS,
        quarantined=(ROTTEN,),
        served_instead={"model.safetensors": b"\0" * len(WEIGHTS)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_integrity_leaves_only_verified_bytes_where_applications_load_them(case: Case) -> None:
    fake = scene()
    case.setup(fake)
    action = only_action(fake)
    assert action.kind is case.kind
    for path, reason in case.refused.items():
        fake.refuse(REPO, C1, path, reason, "403 Forbidden")
    for path, content in case.served_instead.items():
        fake.serve_instead(REPO, C1, path, content)

    result = integrity.apply(action, fake)

    assert {o.path: (o.reason, bool(o.repaired)) for o in result.outcomes} == case.outcomes
    assert result.transferred == case.transferred
    assert fake.files(REPO, C1) == case.present
    assert fake.verified_files(REPO, C1) == set(case.present)
    assert sorted(fake.quarantined.values()) == sorted(case.quarantined)
    for o in result.outcomes:
        if o.repaired:
            assert o.repaired.startswith("model.safetensors: content hashes to")


def test_a_stop_while_verifying_leaves_the_rest_unverified_and_in_place() -> None:
    fake = scene(verified=False)
    fake.stop_after = 1
    action = only_action(fake)

    with pytest.raises(Cancelled):
        integrity.apply(action, fake)

    assert fake.files(REPO, C1) == FILES  # nothing quarantined on the strength of no check
    assert fake.verified_files(REPO, C1) == {action.files[0].path}
    assert [f.path for f in only_action(fake).files] == [f.path for f in action.files[1:]]


def test_a_file_gone_before_its_check_is_reported_and_not_fetched_behind_the_plans_back() -> None:
    fake = scene(verified=False)
    action = only_action(fake)
    del fake.snapshots[(REPO, C1)]["tokenizer.json"]  # another tool removed it meanwhile

    result = integrity.apply(action, fake)

    assert {o.path: o.reason for o in result.failures} == {"tokenizer.json": Reason.DOWNLOAD_FAILED}
    assert fake.files(REPO, C1) == {p: c for p, c in FILES.items() if p != "tokenizer.json"}
    assert fake.quarantined == {}
    assert result.transferred == 0

"""Retention's deletions carried out against an in-memory workspace.

(How retention *chooses* is tested from tables in ``test_retention.py``.)  Each case plans
from the fake's state with ``retention.plan``, applies every deletion, and checks the cache
left behind: which snapshot entries, blobs and refs remain, and that nothing else is then left
to delete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from controller.domain import DesiredModel, Reason
from controller.planning.planner import assess_all
from reconcilers import retention
from reconcilers.retention import Cleanup
from tests.support.factories import C1, C2, NOW, desired
from tests.support.workspace import FakeWorkspace, digest

CONFIG = b'{"hidden_size": 8}'
WEIGHTS = bytes(range(256)) * 4
NEW_WEIGHTS = bytes(reversed(WEIGHTS))
FILES = {"config.json": CONFIG, "model.safetensors": WEIGHTS}
KEPT = DesiredModel(name="kept", repo="org/kept")


def cleanup(fake: FakeWorkspace, *models: DesiredModel) -> Cleanup:
    wanted = desired(*models)
    observed = fake.observation(wanted)
    return retention.plan(wanted, observed, assess_all(wanted, observed), NOW)


def _kept(fake: FakeWorkspace) -> None:
    fake.publish("org/kept", C1, FILES)
    fake.put("org/kept", C1, FILES, owner="kept")


def _removed_from_manifest(fake: FakeWorkspace) -> None:
    _kept(fake)
    fake.put("org/gone", C1, FILES, owner="gone")


def _old_revision(fake: FakeWorkspace) -> None:
    fake.put("org/kept", C1, FILES, owner="kept")
    new = {**FILES, "model.safetensors": NEW_WEIGHTS}
    fake.publish("org/kept", C2, new)
    fake.put("org/kept", C2, new, owner="kept")  # refs/main moved to C2 (60 days ago)


def _shared_with_a_foreign_file(fake: FakeWorkspace) -> None:
    _removed_from_manifest(fake)
    fake.put("org/gone", C1, {"notes.txt": b"another tool's"}, owner=None)


def _deselected(fake: FakeWorkspace) -> None:
    _kept(fake)
    fake.put("org/kept", C1, {"extra.bin": b"no longer selected"}, owner="kept")


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[FakeWorkspace], None]
    reasons: tuple[Reason, ...]  # of the deletions, in order
    # What is left, per (repo, commit): path -> bytes; and where each ref points.
    left: Mapping[tuple[str, str], Mapping[str, bytes]]
    refs: Mapping[tuple[str, str], str]
    models: tuple[DesiredModel, ...] = (KEPT,)
    blobs: frozenset[bytes] = field(default_factory=frozenset)  # every blob left, by content


CASES = [
    Case(
        "a model no manifest declares: its files, blobs and ref go",
        _removed_from_manifest,
        (Reason.REMOVED_FROM_MANIFEST,),
        left={("org/kept", C1): FILES},
        refs={("org/kept", "main"): C1},
        blobs=frozenset(FILES.values()),
    ),
    Case(
        "an old revision: its own blobs go, the ones the new revision shares stay",
        _old_revision,
        (Reason.OLD_REVISION,),
        left={("org/kept", C2): {**FILES, "model.safetensors": NEW_WEIGHTS}},
        refs={("org/kept", "main"): C2},
        blobs=frozenset({CONFIG, NEW_WEIGHTS}),
    ),
    Case(
        "another tool's file in the snapshot: it, the snapshot and its ref stay",
        _shared_with_a_foreign_file,
        (Reason.REMOVED_FROM_MANIFEST,),
        left={("org/kept", C1): FILES, ("org/gone", C1): {"notes.txt": b"another tool's"}},
        refs={("org/kept", "main"): C1, ("org/gone", "main"): C1},
        blobs=frozenset({*FILES.values(), b"another tool's"}),
    ),
    Case(
        "a file the model's patterns no longer select",
        _deselected,
        (Reason.NOT_SELECTED,),
        left={("org/kept", C1): FILES},
        refs={("org/kept", "main"): C1},
        models=(DesiredModel(name="kept", repo="org/kept", exclude=("extra.bin",)),),
        blobs=frozenset(FILES.values()),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_deletion_removes_what_was_planned_and_nothing_else(case: Case) -> None:
    fake = FakeWorkspace(NOW)
    case.setup(fake)
    planned = cleanup(fake, *case.models)
    assert tuple(a.reason for a in planned.deletions) == case.reasons

    results = [retention.apply(a, fake) for a in planned.deletions]

    assert all(r.ok for r in results)
    for r in results:
        assert {o.path for o in r.outcomes} == {f.path for f in r.action.files}
    left = {key: fake.files(*key) for key in fake.snapshots}
    assert left == case.left
    assert fake.refs == case.refs
    assert frozenset(fake.blobs.values()) == case.blobs
    # Ownership goes with the files: nothing owned names an entry that is gone.
    assert all(fake.files(repo, commit).get(path) for repo, commit, path in fake.owned)
    # Nothing left to delete: a second pass would do nothing.
    assert cleanup(fake, *case.models).deletions == ()


def test_a_lease_taken_after_planning_keeps_the_model_whole() -> None:
    fake = FakeWorkspace(NOW)
    _removed_from_manifest(fake)
    (deletion,) = cleanup(fake, KEPT).deletions
    assert deletion.model == "gone"
    fake.leases.add("gone")  # an application started using it between plan and apply

    result = retention.apply(deletion, fake)

    assert [(o.ok, o.reason) for o in result.outcomes] == [(False, Reason.IN_USE)]
    assert fake.files("org/gone", C1) == FILES
    assert fake.refs[("org/gone", "main")] == C1
    assert {digest(c) for c in FILES.values()} <= {b for r, b in fake.blobs if r == "org/gone"}
    # The next plan holds the deletion back until the lease ends, and then carries it out.
    held = cleanup(fake, KEPT)
    assert held.deletions == () and [w.reason for w in held.withheld] == [Reason.IN_USE]
    fake.leases.clear()
    (again,) = cleanup(fake, KEPT).deletions
    assert retention.apply(again, fake).ok
    assert ("org/gone", C1) not in fake.snapshots

"""The download reconciler against an in-memory workspace: what a fetch leaves in the cache.

Each case plans from the fake's state (``download.plan`` over the assessments of what it
observes), applies the one action, and checks the result and the cache: which files are
present, verified and owned, which are not, and what travelled.  Through ``apply_plan`` the
last cases check where the revision's ref ends up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from controller.domain import Action, DesiredModel, Plan, Reason, UpdatePolicy
from controller.engine.apply import apply_plan
from controller.planning.planner import assess_all
from controller.system.cancel import Cancelled
from reconcilers import download
from tests.support.factories import C1, C2, NOW, desired
from tests.support.workspace import FakeWorkspace

REPO = "org/m"
CONFIG = b'{"hidden_size": 8}'
WEIGHTS = bytes(range(256)) * 4
TOKENIZER = b"tokenizer" * 10
FILES = {"config.json": CONFIG, "model.safetensors": WEIGHTS, "tokenizer.json": TOKENIZER}
MODEL = DesiredModel(name="m", repo=REPO)


def planned(fake: FakeWorkspace, model: DesiredModel = MODEL) -> list[Action]:
    wanted = desired(model)
    return download.plan(assess_all(wanted, fake.observation(wanted)))


def only_action(fake: FakeWorkspace, model: DesiredModel = MODEL) -> Action:
    actions = planned(fake, model)
    assert len(actions) == 1, actions
    return actions[0]


@dataclass(frozen=True)
class Case:
    id: str
    cached: Mapping[str, bytes] = field(default_factory=dict)  # at C1 already
    refused: Mapping[str, Reason] = field(default_factory=dict)
    served_instead: Mapping[str, bytes] = field(default_factory=dict)
    # What each file of the action comes to: None is success.
    outcomes: Mapping[str, Reason | None] = field(default_factory=dict)
    transferred: int = 0


CASES = [
    Case(
        "absent: every file travels",
        outcomes={"config.json": None, "model.safetensors": None, "tokenizer.json": None},
        transferred=len(CONFIG) + len(WEIGHTS) + len(TOKENIZER),
    ),
    Case(
        "incomplete: only the missing file travels",
        cached={"config.json": CONFIG, "tokenizer.json": TOKENIZER},
        outcomes={"model.safetensors": None},
        transferred=len(WEIGHTS),
    ),
    Case(
        "the hub refuses one file: the others still arrive",
        refused={"model.safetensors": Reason.ACCESS_DENIED},
        outcomes={
            "config.json": None,
            "model.safetensors": Reason.ACCESS_DENIED,
            "tokenizer.json": None,
        },
        transferred=len(CONFIG) + len(TOKENIZER),
    ),
    Case(
        "the hub sends other bytes: the file is refused, nothing of it published",
        served_instead={"model.safetensors": bytes(reversed(WEIGHTS))},
        outcomes={
            "config.json": None,
            "model.safetensors": Reason.CHECKSUM_MISMATCH,
            "tokenizer.json": None,
        },
        transferred=len(CONFIG) + len(TOKENIZER),
    ),
    Case(
        "the hub sends a truncated file",
        served_instead={"tokenizer.json": TOKENIZER[:-1]},
        outcomes={
            "config.json": None,
            "model.safetensors": None,
            "tokenizer.json": Reason.SIZE_MISMATCH,
        },
        transferred=len(CONFIG) + len(WEIGHTS),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_download_leaves_exactly_the_good_files_in_the_cache(case: Case) -> None:
    fake = FakeWorkspace(NOW)
    fake.publish(REPO, C1, FILES)
    fake.put(REPO, C1, case.cached, owner="m")
    for path, reason in case.refused.items():
        fake.refuse(REPO, C1, path, reason, "403 Forbidden")
    for path, content in case.served_instead.items():
        fake.serve_instead(REPO, C1, path, content)

    result = download.apply(only_action(fake), fake)

    assert {o.path: o.reason for o in result.outcomes} == case.outcomes
    assert result.ok is all(r is None for r in case.outcomes.values())
    assert result.transferred == case.transferred
    good = {p for p, r in case.outcomes.items() if r is None} | set(case.cached)
    # The cache holds the right bytes of the good files, each verified and owned; a failed
    # file is simply absent (not present with the wrong bytes, where an application would
    # load it), and no blob holds what the hub got wrong.
    assert fake.files(REPO, C1) == {p: FILES[p] for p in good}
    assert fake.verified_files(REPO, C1) == good
    assert {k[2] for k, owner in fake.owned.items() if owner == "m"} == good
    assert set(fake.blobs.values()) == {FILES[p] for p in good}
    for failed in (o for o in result.outcomes if not o.ok):
        assert failed.detail.startswith(failed.path)
    # Once the failures are gone, what is left to plan is exactly what failed.
    left = {f.path for a in planned(fake) for f in a.files}
    assert left == set(FILES) - good


def test_a_stop_between_files_keeps_what_arrived() -> None:
    fake = FakeWorkspace(NOW)
    fake.publish(REPO, C1, FILES)
    fake.stop_after = 1
    action = only_action(fake)

    with pytest.raises(Cancelled):
        download.apply(action, fake)

    first = action.files[0].path
    assert fake.files(REPO, C1) == {first: FILES[first]}
    assert fake.verified_files(REPO, C1) == {first}
    assert [f.path for f in only_action(fake).files] == [f.path for f in action.files[1:]]


def test_an_update_fetches_the_changed_files_and_links_the_rest() -> None:
    fake = FakeWorkspace(NOW)
    fake.publish(REPO, C1, FILES)
    fake.put(REPO, C1, FILES, owner="m")
    new_weights = WEIGHTS[::-1]
    fake.publish(REPO, C2, {**FILES, "model.safetensors": new_weights})
    model = DesiredModel(name="m", repo=REPO, updates=UpdatePolicy.AUTO)
    action = only_action(fake, model)
    assert (action.reason, action.commit) == (Reason.UPSTREAM_MOVED, C2)

    result = download.apply(action, fake)

    assert result.ok and result.transferred == len(new_weights)
    assert fake.files(REPO, C2) == {**FILES, "model.safetensors": new_weights}
    assert fake.files(REPO, C1) == FILES  # applications loading the old commit keep it
    assert fake.refs[(REPO, "main")] == C1  # pointing it is the engine's, once all succeeded


# --------------------------------------------------------------------------- the ref


@dataclass(frozen=True)
class RefCase:
    id: str
    refused: tuple[str, ...] = ()
    stop_after: int | None = None
    lease: bool = False
    ref: str = C2  # where refs/main ends up (it named C1 before)
    failed: bool = False
    stopped: bool = False


REF_CASES = [
    RefCase("every file arrived: the ref moves"),
    RefCase("a file failed: the ref stays", refused=("model.safetensors",), ref=C1, failed=True),
    RefCase("stopped midway: the ref stays", stop_after=1, ref=C1, stopped=True),
    RefCase("a lease appeared meanwhile: the switch waits", lease=True, ref=C1),
]


@pytest.mark.parametrize("case", REF_CASES, ids=[c.id for c in REF_CASES])
def test_the_ref_names_the_new_commit_only_once_all_of_it_is_there(case: RefCase) -> None:
    fake = FakeWorkspace(NOW)
    fake.publish(REPO, C1, FILES)
    fake.put(REPO, C1, FILES, owner="m")
    fake.publish(REPO, C2, {**FILES, "model.safetensors": WEIGHTS[::-1], "extra.bin": b"x"})
    model = DesiredModel(name="m", repo=REPO, updates=UpdatePolicy.AUTO)
    actions = tuple(planned(fake, model))
    for path in case.refused:
        fake.refuse(REPO, C2, path, Reason.ACCESS_DENIED, "403 Forbidden")
    fake.stop_after = case.stop_after
    if case.lease:
        fake.leases.add("m")

    outcome = apply_plan(Plan(actions=actions, generation="g1", created_at=NOW), fake)

    assert fake.refs[(REPO, "main")] == case.ref
    assert ("m" in outcome.failures) is case.failed
    assert outcome.stopped == (("m",) if case.stopped else ())
    assert fake.files(REPO, C1) == FILES  # whatever happened, the served commit is whole

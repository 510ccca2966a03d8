"""Re-reading a few models mid-pass: what ``observe_models`` reads must assess like ``observe``."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cache import layout
from controller.cache.inspection import inspect
from controller.domain import (
    DesiredModel,
    FileWork,
    Reason,
    RemoteFile,
    RemoteProblem,
    RemoteRevision,
)
from controller.engine.observe import (
    UNREACHABLE_IN_A_ROW,
    UnreachableRun,
    observe,
    observe_models,
)
from controller.planning.planner import assess_all
from controller.store import StateStore, leases
from controller.system.clock import utcnow
from tests.support import repos
from tests.support.factories import NOW, desired
from tests.support.hub import LocalHub


def verify_all(store: StateStore, cache: Path, repo: str, commit: str) -> None:
    """Record a good verification of each of the commit's files, as an apply would."""
    for path, entry in layout.read_repo(cache, repo).files_at(commit).items():
        f = FileWork(path, entry.size, entry.blob)
        assert inspect(store, repo, f, layout.snapshot_path(cache, repo, commit, path), utcnow).ok


def test_a_few_models_assess_as_they_would_from_the_whole_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    commits = {
        repo: repos.publish(cache, repo, {"config.json": repo.encode(), "model.bin": b"w" * 99})
        for repo in ("org/a", "org/b", "other/tool")  # other/tool: no model declares it
    }
    a, b = DesiredModel("a", "org/a"), DesiredModel("b", "org/b")
    everything = desired(a, b, root=tmp_path, endpoint="http://127.0.0.1:9")
    with StateStore.open(tmp_path / "state") as store:
        verify_all(store, cache, "org/a", commits["org/a"])  # b stays unverified
        store.add_request("b", utcnow())
        store.add_lease(leases.new_lease("a", utcnow(), holder="a test"))

        whole = observe(everything, now=utcnow(), offline=True, store=store)
        for name in ("a", "b"):
            chosen = desired(
                *(m for m in everything.models if m.name == name),
                root=tmp_path,
                endpoint="http://127.0.0.1:9",
            )
            few = observe_models(chosen, now=utcnow(), store=store, remote=whole.remote)
            assert assess_all(chosen, few) == assess_all(chosen, whole)
            assert set(few.cache) == {chosen.models[0].repo}  # its own repo only

    found = {x.model.name: x for x in assess_all(everything, whole)}
    assert found["a"].complete and found["a"].in_use  # the records above were read
    assert found["b"].unverified and found["b"].requested


def test_records_passed_in_are_used_instead_of_a_query_per_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    commit = repos.publish(cache, "org/a", {"config.json": b"{}"})
    path = layout.snapshot_path(cache, "org/a", commit, "config.json")
    entry = layout.read_repo(cache, "org/a").files_at(commit)["config.json"]
    f = FileWork("config.json", entry.size, entry.blob)
    with StateStore.open(tmp_path / "state") as store:
        assert inspect(store, "org/a", f, path, utcnow).hashed  # first sight: hashed
        known = store.verifications_for("org/a")
        assert not inspect(store, "org/a", f, path, utcnow, known=known).hashed  # trusted
        # Records that say nothing of the file: it is hashed again, whatever the store holds.
        assert inspect(store, "org/a", f, path, utcnow, known={}).hashed


def test_an_applying_pass_remembers_what_its_lock_pins_and_a_plan_does_not(
    tmp_path: Path,
) -> None:
    def pinned_at(commit: str, *paths: str) -> RemoteRevision:
        files = tuple(RemoteFile(p, 1, "b" * 40) for p in paths)
        return RemoteRevision("org/a", "main", commit, files, locked=True)

    weights = DesiredModel("weights", "org/a", include=("*.bin",))
    config = DesiredModel("config", "org/a", include=("*.json",))
    state = desired(weights, config, root=tmp_path, endpoint="http://127.0.0.1:9")
    pinned = {"weights": pinned_at("1" * 40, "w.bin"), "config": pinned_at("1" * 40, "c.json")}
    with StateStore.open(tmp_path / "state") as store:
        observe(state, now=NOW, store=store, pinned=pinned)
        recalled = store.recall_remote("org/a", "main")
    # The union of the entries that share the revision: each model finds its own files.
    assert recalled is not None and recalled.learned_at == NOW
    assert (recalled.commit, [f.path for f in recalled.files]) == ("1" * 40, ["c.json", "w.bin"])

    # A plan, with a lock that moved, changes nothing it would read.
    observe(state, now=NOW, pinned={"weights": pinned_at("2" * 40, "w.bin")})
    with StateStore.open(tmp_path / "state") as store:
        again = store.recall_remote("org/a", "main")
    assert again is not None and again.commit == "1" * 40


def test_an_applying_pass_remembers_each_hub_answer_and_a_plan_remembers_none(
    tmp_path: Path,
) -> None:
    with LocalHub(tmp_path / "hub") as hub:
        first = hub.publish("org/a", {"a.json": b"{}"})
        second = hub.publish("org/b", {"b.json": b"[]"})
        models = (DesiredModel("a", "org/a"), DesiredModel("b", "org/b"))
        state = desired(*models, root=tmp_path, endpoint=hub.url)
        observe(state, now=NOW)  # a plan: nothing remembered, no state directory made
        assert not (tmp_path / "state").exists()
        with StateStore.open(tmp_path / "state") as store:
            observed = observe(state, now=NOW, store=store)
            recalled = [store.recall_remote(repo, "main") for repo in ("org/a", "org/b")]
    assert [(r.commit, r.learned_at) for r in recalled if r is not None] == [
        (first, NOW),
        (second, NOW),
    ]
    assert [f.path for r in recalled if r is not None for f in r.files] == ["a.json", "b.json"]
    assert {
        name: a.commit for name, a in observed.remote.items() if isinstance(a, RemoteRevision)
    } == {
        "a": first,
        "b": second,
    }


def lookups(hub: LocalHub) -> list[str]:
    return [r.path for r in hub.requests if r.path.startswith("/api/models/")]


def test_once_the_hub_is_unreachable_for_a_few_models_in_a_row_the_rest_are_not_asked(
    tmp_path: Path,
) -> None:
    names = [f"m{i:02d}" for i in range(40)]
    with LocalHub(tmp_path / "hub") as hub:
        for name in names:
            hub.publish(f"org/{name}", {"a.json": b"{}"})
        hub.faults.fail("/api/models/*", 503, times=None)
        state = desired(
            *(DesiredModel(n, f"org/{n}") for n in names), root=tmp_path, endpoint=hub.url
        )

        observed = observe(state, now=NOW)

        asked = lookups(hub)
    problems = [observed.remote[n] for n in names]
    assert all(
        isinstance(p, RemoteProblem) and p.reason is Reason.HUB_UNREACHABLE for p in problems
    )
    # The first few, one per worker, are asked (each three times: two retries); once three
    # in a row failed, the rest are not asked, and they say why.
    assert len(set(asked)) < len(names) // 2
    skipped = [p for p in problems if isinstance(p, RemoteProblem) and "not asked" in p.message]
    assert skipped and all(
        f"unreachable for {UNREACHABLE_IN_A_ROW} models in a row" in p.message
        and "HTTP 503" in p.message
        for p in skipped
    )


def test_a_hub_that_fails_one_model_is_still_asked_about_every_other(tmp_path: Path) -> None:
    names = [f"m{i:02d}" for i in range(12)]
    with LocalHub(tmp_path / "hub") as hub:
        for name in names:
            hub.publish(f"org/{name}", {"a.json": b"{}"})
        hub.faults.fail("/api/models/org/m00/*", 503, times=None)
        state = desired(
            *(DesiredModel(n, f"org/{n}") for n in names), root=tmp_path, endpoint=hub.url
        )

        observed = observe(state, now=NOW)

        asked = lookups(hub)
    assert len(asked) == len(names) - 1 + 3  # m00 three times, with its retries
    assert all(isinstance(observed.remote[n], RemoteRevision) for n in names[1:])
    failed = observed.remote["m00"]
    assert isinstance(failed, RemoteProblem) and "not asked" not in failed.message


UNREACHABLE = RemoteProblem(Reason.HUB_UNREACHABLE, "cannot reach the hub")
GATED = RemoteProblem(Reason.ACCESS_DENIED, "gated")
ANSWER = RemoteRevision(repo="org/a", revision="main", commit="1" * 40, files=())


@pytest.mark.parametrize(
    ("answers", "down"),
    [
        ([UNREACHABLE] * 3, True),
        ([UNREACHABLE] * 2, False),
        ([UNREACHABLE, UNREACHABLE, ANSWER, UNREACHABLE], False),  # an answer starts again
        ([UNREACHABLE, GATED, UNREACHABLE, UNREACHABLE], False),  # so does any other problem
        ([UNREACHABLE, ANSWER, UNREACHABLE, UNREACHABLE, UNREACHABLE], True),
        ([UNREACHABLE, UNREACHABLE, UNREACHABLE, ANSWER], True),  # once down, down for the pass
    ],
)
def test_the_run_of_unreachable_answers(
    answers: list[RemoteRevision | RemoteProblem], down: bool
) -> None:
    run = UnreachableRun()
    for answer in answers:
        run.heard(answer)
    assert (run.down is UNREACHABLE) is down

"""Retention's actions in full: every field of each deletion it plans and of each one it
holds back (kind, model, repo, commit, files with their sizes, bytes freed, rule, message),
and what it says when the budget cannot be met.

The worlds are those of ``test_retention.py`` (every model present, owned, downloaded and
its ref moved 60 days ago, never used, unless a case says otherwise); ``retention.plan`` is
called directly, with the clock passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest

from controller.domain import (
    Action,
    ActionKind,
    DeletionRecord,
    DesiredModel,
    FileWork,
    Lease,
    Observation,
    Policy,
    Priority,
    Reason,
    RemoteFile,
    RemoteRevision,
    RetentionPolicy,
    Unmanaged,
    UpdatePolicy,
)
from controller.domain.budget import Budget
from controller.planning.planner import assess_all
from reconcilers import retention
from reconcilers.retention import Cleanup
from tests.support.factories import C1, C2, CONFIG, NOW, WEIGHTS
from tests.unit.reconcilers.test_retention import (
    FILES,
    MOVED,
    NEW_WEIGHTS,
    SIZE,
    World,
    m,
    moved,
    on_demand,
    present,
)

C0 = "0" * 40
DAY = timedelta(days=1)
EMPTY = RemoteFile("empty.txt", 0, "e" * 40)
TWIN = RemoteFile("twin.json", CONFIG.size, CONFIG.etag)  # the same bytes as config.json


def fw(*files: RemoteFile) -> tuple[FileWork, ...]:
    return tuple(FileWork(f.path, f.size, f.etag) for f in sorted(files, key=lambda f: f.path))


def deletion(
    model: str,
    files: tuple[FileWork, ...],
    frees: int,
    reason: Reason,
    message: str,
    *,
    commit: str = C1,
    repo: str | None = None,
) -> Action:
    """A deletion as retention plans it: it names the commit it removes, never a ref."""
    return Action(
        kind=ActionKind.DELETE,
        model=model,
        repo=repo or f"org/{model}",
        revision=commit,
        commit=commit,
        files=files,
        bytes=frees,
        reason=reason,
        message=message,
    )


def cleanup(
    world: World | Observation,
    budget: int | None = None,
    *,
    models: tuple[DesiredModel, ...] = (),
    retention_policy: RetentionPolicy | None = None,
) -> Cleanup:
    """Plan retention alone over ``world`` (or over an observation edited from one)."""
    if isinstance(world, World):
        wanted, observed = world.declared(), world.observation()
    else:
        base = World(models=models, retention=retention_policy or RetentionPolicy())
        wanted, observed = base.declared(), world
    chosen = None if budget is None else Budget(budget, "--budget-bytes")
    return retention.plan(wanted, observed, assess_all(wanted, observed), NOW, budget=chosen)


def record(
    model: str, commit: str, *files: RemoteFile, reason: Reason = Reason.REMOVED_FROM_MANIFEST
) -> DeletionRecord:
    return DeletionRecord(
        id=len(files),
        model=model,
        repo=f"org/{model}",
        commit=commit,
        reason=reason,
        message="killed",
        files=fw(*files),
        started_at=NOW - timedelta(hours=1),
    )


UNUSED = "on-demand, downloaded 60 days ago, not used since (max_unused_days 30); fetched again"
KILLED = "finishing the deletion killed at 2026-11-26 11:00:00 UTC (RemovedFromManifest: killed)"


@dataclass(frozen=True)
class Case:
    world: World
    deletions: list[Action]
    withheld: list[tuple[Action, Reason, str]] = field(default_factory=list)
    budget: int | None = None


CASES = [
    pytest.param(
        Case(
            World(models=(on_demand("idle"),), present=present("idle")),
            [
                deletion(
                    "idle",
                    fw(*FILES),
                    SIZE,
                    Reason.UNUSED,
                    f"{UNUSED} when requested; frees 1.0 kB",
                )
            ],
        ),
        id="unused-never-used",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("idle"),),
                present=present("idle"),
                usage={"idle": (0.0, NOW - 31 * DAY)},
            ),
            [
                deletion(
                    "idle",
                    fw(*FILES),
                    SIZE,
                    Reason.UNUSED,
                    "on-demand, last used 31 days ago (max_unused_days 30); fetched again when "
                    "requested; frees 1.0 kB",
                )
            ],
        ),
        id="unused-last-used-long-ago",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("idle"),),
                present=present("idle"),
                usage={"idle": (0.0, NOW - 30 * DAY)},
            ),
            [],
        ),
        id="unused-exactly-max-unused-days-stays",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("vip", priority=Priority.HIGH), on_demand("idle")),
                present=present("vip", "idle"),
            ),
            [
                deletion(
                    "idle",
                    fw(*FILES),
                    SIZE,
                    Reason.UNUSED,
                    f"{UNUSED} when requested; frees 1.0 kB",
                )
            ],
        ),
        id="a-protected-model-first-does-not-stop-the-next",
    ),
    pytest.param(
        Case(
            World(models=(on_demand("absent"), on_demand("idle")), present=present("idle")),
            [
                deletion(
                    "idle",
                    fw(*FILES),
                    SIZE,
                    Reason.UNUSED,
                    f"{UNUSED} when requested; frees 1.0 kB",
                )
            ],
        ),
        id="an-absent-model-first-does-not-stop-the-next",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("own", adopt=True),),
                present=present("own"),
                foreign={("org/own", C1)},
            ),
            [],
        ),
        id="adopted-today-is-not-unused",
    ),
    pytest.param(
        Case(
            World(models=(on_demand("own", adopt=True),), present=present("own")),
            [
                deletion(
                    "own", fw(*FILES), SIZE, Reason.UNUSED, f"{UNUSED} when requested; frees 1.0 kB"
                )
            ],
        ),
        id="adopt-keeps-the-time-of-the-download",
    ),
    pytest.param(
        Case(
            World(
                models=(m("a"), on_demand("b")),
                present=present("a", "b"),
                usage={"b": (0.01, NOW)},
            ),
            [
                deletion(
                    "b",
                    fw(*FILES),
                    SIZE,
                    Reason.OVER_BUDGET,
                    "over the disk budget: the least valuable on-demand model (priority low, "
                    "0.01 uses/day, last used today); fetched again when requested; frees 1.0 kB",
                )
            ],
            budget=SIZE,
        ),
        id="over-budget",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("b"), on_demand("c")),
                present=present("b", "c"),
                usage={"c": (0.0, NOW - 40 * DAY)},
                retention=RetentionPolicy(max_unused_days=365),
            ),
            [
                deletion(
                    "b",
                    fw(*FILES),
                    SIZE,
                    Reason.OVER_BUDGET,
                    "over the disk budget: the least valuable on-demand model (priority low, "
                    "0 uses/day, never used); fetched again when requested; frees 1.0 kB",
                )
            ],
            budget=SIZE,
        ),
        id="over-budget-never-used-goes-before-used-once",
    ),
    pytest.param(
        Case(
            World(
                models=(m("a"), on_demand("idle"), on_demand("c")),
                present=present("a", "idle", "c"),
                usage={"c": (0.01, NOW)},
            ),
            [
                deletion(
                    "idle",
                    fw(*FILES),
                    SIZE,
                    Reason.UNUSED,
                    f"{UNUSED} when requested; frees 1.0 kB",
                ),
                deletion(
                    "c",
                    fw(*FILES),
                    SIZE,
                    Reason.OVER_BUDGET,
                    "over the disk budget: the least valuable on-demand model (priority low, "
                    "0.01 uses/day, last used today); fetched again when requested; frees 1.0 kB",
                ),
            ],
            budget=SIZE,
        ),
        id="over-budget-passes-over-one-already-evicted",
    ),
    pytest.param(
        Case(
            World(
                models=(m("a"), on_demand("b")),
                present=present("a", "b"),
                since={"b": NOW - 7 * DAY},
            ),
            [
                deletion(
                    "b",
                    fw(*FILES),
                    SIZE,
                    Reason.OVER_BUDGET,
                    "over the disk budget: the least valuable on-demand model (priority low, "
                    "0 uses/day, never used); fetched again when requested; frees 1.0 kB",
                )
            ],
            budget=SIZE,
        ),
        id="downloaded-exactly-a-week-ago-is-no-longer-recent",
    ),
    pytest.param(
        Case(
            # org/a was downloaded for a model named z: deletions go in repo order, not by
            # model name, and each names the model that downloaded it.
            World(models=(m("kept"),), present=present("kept", "a", "b"), owners={"org/a": "z"}),
            [
                deletion(
                    "z",
                    fw(*FILES),
                    SIZE,
                    Reason.REMOVED_FROM_MANIFEST,
                    "no manifest declares z any more; 2 files; frees 1.0 kB",
                    repo="org/a",
                ),
                deletion(
                    "b",
                    fw(*FILES),
                    SIZE,
                    Reason.REMOVED_FROM_MANIFEST,
                    "no manifest declares b any more; 2 files; frees 1.0 kB",
                ),
            ],
        ),
        id="removed-in-repo-order",
    ),
    pytest.param(
        Case(
            World(
                models=(m("kept"),),
                present={"org/gone": (C1, (EMPTY, *FILES))},
                extra={"org/gone": {C2: (CONFIG,)}},
            ),
            [
                deletion(
                    "gone",
                    fw(EMPTY, *FILES),
                    WEIGHTS.size,  # config.json's blob is C2's too, until that goes
                    Reason.REMOVED_FROM_MANIFEST,
                    "no manifest declares gone any more; 3 files; frees 1.0 kB",
                ),
                deletion(
                    "gone",
                    fw(CONFIG),
                    CONFIG.size,
                    Reason.REMOVED_FROM_MANIFEST,
                    "no manifest declares gone any more; 1 file; frees 10 B",
                    commit=C2,
                ),
            ],
        ),
        id="removed-by-commit-an-empty-file-listed-with-its-size",
    ),
    pytest.param(
        Case(
            World(models=(m("a", include=("*.json",)),), present=present("a")),
            [
                deletion(
                    "a",
                    fw(WEIGHTS),
                    WEIGHTS.size,
                    Reason.NOT_SELECTED,
                    "include/exclude of a no longer select 1 file at 111111111111; frees 1.0 kB",
                )
            ],
        ),
        id="not-selected",
    ),
    pytest.param(
        Case(
            moved(DAY),
            [
                deletion(
                    "a",
                    fw(*FILES),
                    WEIGHTS.size,
                    Reason.OLD_REVISION,
                    "a moved from 111111111111 to 222222222222; 2 files of the old revision "
                    "(blobs the new one shares stay); frees 1.0 kB",
                )
            ],
        ),
        id="old-revision",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("idle"),),
                present={"org/idle": (C2, MOVED)},
                extra={"org/idle": {C1: FILES}},
                remote={"idle": RemoteRevision("org/idle", "main", C2, MOVED)},
                evicted={"idle"},
                requested={"idle"},
            ),
            [
                deletion(
                    "idle",
                    fw(*FILES),
                    WEIGHTS.size,
                    Reason.OLD_REVISION,
                    "idle moved from 111111111111 to 222222222222; 2 files of the old revision "
                    "(blobs the new one shares stay); frees 1.0 kB",
                )
            ],
        ),
        id="evicted-then-requested-again-its-old-revision-is-an-old-revision",
    ),
    pytest.param(
        Case(
            World(
                models=(on_demand("idle"),), present={"org/idle": (C1, (CONFIG,))}, evicted={"idle"}
            ),
            [
                deletion(
                    "idle",
                    fw(CONFIG),
                    CONFIG.size,
                    Reason.UNUSED,
                    "idle was evicted 2026-09-27 (Unused); 1 file left; frees 10 B",
                )
            ],
        ),
        id="what-an-eviction-left",
    ),
    pytest.param(
        Case(
            World(
                models=(m("a", updates=UpdatePolicy.AUTO),),
                present={"org/a": (C1, FILES)},
                extra={"org/a": {C0: FILES}},
                remote={"a": RemoteRevision("org/a", "main", C2, MOVED)},
                leases={"a"},
            ),
            [],
            [
                (
                    deletion(
                        "a",
                        fw(*FILES),
                        0,  # both blobs are C1's too
                        Reason.OLD_REVISION,
                        "a moved from 000000000000 to 111111111111, 222222222222; 2 files of "
                        "the old revision (blobs the new one shares stay); frees 0 B",
                        commit=C0,
                    ),
                    Reason.IN_USE,
                    "in use (pid 7 on gpu-1); the deletion waits until the lease ends",
                )
            ],
        ),
        id="an-update-held-by-a-lease-keeps-both-commits",
    ),
    pytest.param(
        Case(
            World(
                models=(m("kept"),),
                present={"org/gone": (C1, (CONFIG, TWIN))},
                leases={"gone"},
            ),
            [],
            [
                (
                    deletion(
                        "gone",
                        fw(CONFIG, TWIN),
                        CONFIG.size,  # one blob behind both entries
                        Reason.REMOVED_FROM_MANIFEST,
                        "no manifest declares gone any more; 2 files; frees 10 B",
                    ),
                    Reason.IN_USE,
                    "in use (pid 7 on gpu-1); the deletion waits until the lease ends",
                )
            ],
        ),
        id="held-back-says-what-it-frees-one-blob-behind-two-entries",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_retention_actions(case: Case) -> None:
    planned = cleanup(case.world, case.budget)
    assert list(planned.deletions) == case.deletions
    assert [(w.action, w.reason, w.message) for w in planned.withheld] == case.withheld
    assert planned.errors == ()


# ---------------------------------------------------------------- the budget, in numbers


def test_every_deletion_counts_toward_the_budget() -> None:
    world = World(models=(m("kept"),), present=present("kept", "a", "b"))
    fit = cleanup(world, SIZE).fit
    assert fit is not None and (fit.on_disk, fit.freed, fit.fits) == (3 * SIZE, 2 * SIZE, True)


def test_what_cannot_be_evicted_is_named_with_its_reason() -> None:
    """Every on-demand model retention passes over says why; one with nothing on disk has
    nothing to say and is not listed."""
    shared = DesiredModel(name="dup", repo="org/a", policy=Policy.ON_DEMAND, include=("*.json",))
    world = World(
        models=(
            m("a"),
            shared,
            on_demand("absent"),
            on_demand("theirs"),
            on_demand("new"),
            on_demand("asked"),
        ),
        present=present("a", "theirs", "new", "asked"),
        foreign={("org/theirs", C1)},
        since={"new": NOW - DAY},
        requested={"asked"},
    )
    planned = cleanup(world, SIZE)
    assert planned.deletions == ()
    (error,) = planned.errors
    assert "(a (policy always); " in error
    assert "asked (requested)" in error
    assert "dup (nothing of its own to delete)" in error
    assert "new (arrived 1 day ago (preserve_recently_downloaded))" in error
    assert (
        "theirs (2 files not downloaded by modelsync (set `adopt: true` or run "
        "`reconcile adopt` to let retention manage it))"
    ) in error
    assert "absent" not in error


def test_a_model_partly_downloaded_by_another_tool_is_not_evicted() -> None:
    world = World(
        models=(m("a"), on_demand("part")),
        present={"org/a": (C1, FILES), "org/part": (C1, (CONFIG,))},
        extra={"org/part": {C1: (WEIGHTS,)}},
        retention=RetentionPolicy(preserve_recently_downloaded=False),
    )
    observed = world.observation()
    # Only config.json was downloaded by modelsync; the weights came from elsewhere.
    mine = tuple(o for o in observed.owned if o.repo != "org/part" or o.path == CONFIG.path)
    planned = cleanup(
        replace(observed, owned=mine), SIZE, models=world.models, retention_policy=world.retention
    )
    assert planned.deletions == ()
    (error,) = planned.errors
    assert "part (1 file not downloaded by modelsync (set `adopt: true`" in error


def test_a_model_without_adopt_is_not_made_evictable_by_a_budget() -> None:
    world = World(
        models=(m("a"), on_demand("theirs")),
        present=present("a", "theirs"),
        foreign={("org/theirs", C1)},
        retention=RetentionPolicy(preserve_recently_downloaded=False),
    )
    planned = cleanup(world, SIZE)
    assert planned.deletions == () and len(planned.errors) == 1


def test_a_file_another_declared_model_needs_is_never_evicted() -> None:
    """``dup`` selects a's config.json: evicting dup frees nothing and deletes nothing."""
    shared = DesiredModel(name="dup", repo="org/a", policy=Policy.ON_DEMAND, include=("*.json",))
    world = World(models=(m("a"), shared), present=present("a"))
    planned = cleanup(world, SIZE // 2)
    assert planned.deletions == ()


def test_used_exactly_min_usage_frequency_stays_and_says_so() -> None:
    world = World(
        models=(m("a"), on_demand("b")), present=present("a", "b"), usage={"b": (0.1, NOW)}
    )
    planned = cleanup(world, SIZE)
    assert planned.deletions == ()
    (error,) = planned.errors
    assert "b (used 0.1/day, at least min_usage_frequency 0.1)" in error


def test_old_revisions_of_two_models_wait_together() -> None:
    world = World(
        models=(m("a"), m("b")),
        present={"org/a": (C2, MOVED), "org/b": (C2, MOVED)},
        extra={"org/a": {C1: FILES}, "org/b": {C1: FILES}},
        remote={name: RemoteRevision(f"org/{name}", "main", C2, MOVED) for name in "ab"},
        switched={"org/a": NOW - timedelta(minutes=3), "org/b": NOW - timedelta(minutes=3)},
    )
    (warning,) = cleanup(world, 2 * (CONFIG.size + NEW_WEIGHTS.size)).warnings
    assert warning.endswith(
        "; old revisions of a, b (2.0 kB) stay until their grace period ends "
        "(retention.old_revision_grace)"
    )


# ---------------------------------------------------------------- interrupted deletions


def test_an_interrupted_deletion_finishes_entries_and_orphans_alike() -> None:
    """Killed after unlinking config.json: the weights' entry and both blobs go."""
    world = World(
        models=(m("a"),),
        present={"org/a": (C1, FILES), "org/gone": (C1, (WEIGHTS,))},
        orphans={"org/gone": {CONFIG.etag: CONFIG.size}},
        pending=(record("gone", C1, CONFIG, WEIGHTS),),
    )
    (action,) = cleanup(world).deletions
    assert action == deletion(
        "gone", fw(CONFIG, WEIGHTS), SIZE, Reason.INTERRUPTED, f"{KILLED}; frees 1.0 kB"
    )


def test_an_interrupted_deletion_waits_for_its_rest_and_others_follow() -> None:
    """The journal named only the weights: config.json, owned too, goes in a later plan;
    other deletions go on in this one."""
    world = World(
        models=(m("a"),),
        present=present("a", "gone", "later"),
        pending=(record("gone", C1, WEIGHTS),),
    )
    assert list(cleanup(world).deletions) == [
        deletion("gone", fw(WEIGHTS), WEIGHTS.size, Reason.INTERRUPTED, f"{KILLED}; frees 1.0 kB"),
        deletion(
            "later",
            fw(*FILES),
            SIZE,
            Reason.REMOVED_FROM_MANIFEST,
            "no manifest declares later any more; 2 files; frees 1.0 kB",
        ),
    ]


def test_blobs_already_gone_are_neither_on_disk_nor_freed() -> None:
    world = World(models=(m("a"),), present=present("a"), pending=(record("gone", C1, *FILES),))
    planned = cleanup(world, SIZE)
    (action,) = planned.deletions
    assert action.bytes == 0
    assert planned.fit is not None and (planned.fit.on_disk, planned.fit.freed) == (SIZE, 0)


def test_a_blob_several_interrupted_deletions_name_is_freed_once() -> None:
    other = RemoteFile("model.safetensors", 2000, "f" * 40)
    world = World(
        models=(m("a"),),
        present=present("a"),
        orphans={"org/gone": {CONFIG.etag: CONFIG.size, WEIGHTS.etag: 1000, other.etag: 2000}},
        pending=(
            record("gone", C0, CONFIG, WEIGHTS),
            record("gone", C1, other),
            record("gone", C2, CONFIG),
        ),
    )
    assert [a.bytes for a in cleanup(world).deletions] == [SIZE, 2000, 0]


# ---------------------------------------------------------------- entries of every kind


def copied(observed: Observation, repo: str) -> Observation:
    """``repo``'s snapshot entries as plain copies (no blobs/ behind them)."""
    cached = observed.cache[repo]
    snapshots = {
        commit: {path: replace(entry, blob="") for path, entry in files.items()}
        for commit, files in cached.snapshots.items()
    }
    return replace(
        observed, cache={**observed.cache, repo: replace(cached, snapshots=snapshots, blobs={})}
    )


def test_a_copied_file_frees_its_own_size() -> None:
    world = World(models=(m("a", include=("*.json",)),), present=present("a"))
    observed = copied(world.observation(), "org/a")
    (action,) = cleanup(observed, models=world.models).deletions
    assert (action.files, action.bytes) == ((FileWork(WEIGHTS.path, WEIGHTS.size, ""),), 1000)


def test_every_lease_holder_is_named() -> None:
    world = World(models=(m("kept"),), present=present("kept", "gone"))
    holders = tuple(
        Lease(f"l-{n}", "gone", f"pid {n} on gpu-{n}", n, f"gpu-{n}", NOW, NOW, 60.0)
        for n in (2, 1)
    )
    observed = replace(world.observation(), leases={"gone": holders})
    (held,) = cleanup(observed, models=world.models).withheld
    assert held.message.startswith("in use (pid 1 on gpu-1, pid 2 on gpu-2); ")


def test_unmanaged_counts_only_what_nothing_of_modelsync_shares() -> None:
    world = World(
        models=(m("a"), m("theirs")),
        present=present("a", "gone", "theirs"),
        extra={"org/a": {C2: (CONFIG, NEW_WEIGHTS)}},
        foreign={("org/a", C2), ("org/theirs", C1)},
    )
    # C2 shares config.json with C1 (modelsync's): only its new weights are another tool's.
    # A declared model's files are needed, not unmanaged, whoever downloaded them; and what
    # retention deletes is modelsync's own.
    assert cleanup(world).unmanaged == (Unmanaged("org/a", NEW_WEIGHTS.size, (C2,)),)


# ---------------------------------------------------------------- grace periods


@pytest.mark.parametrize(
    ("grace", "said"),
    [
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=3), "3 hours"),
        (timedelta(days=2), "2 days"),
        (timedelta(seconds=90), "90 seconds"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(seconds=1.5), "1.5 seconds"),
        (timedelta(0), "0 seconds"),
    ],
)
def test_an_update_says_how_long_the_old_revision_stays(grace: timedelta, said: str) -> None:
    world = World(
        models=(m("a", updates=UpdatePolicy.AUTO),),
        present=present("a"),
        remote={"a": RemoteRevision("org/a", "main", C2, MOVED)},
        retention=RetentionPolicy(old_revision_grace=grace),
    )
    (held,) = world.plan().withheld
    assert held.message.startswith(f"kept for {said} after refs/main moves, ")


def test_other_work_does_not_restart_the_grace_period() -> None:
    """The new revision misses a file (a download is planned), but its ref moved 11 minutes
    ago: the old revision's grace period is over all the same."""
    world = moved(timedelta(minutes=11))
    world = replace(world, present={"org/a": (C2, (CONFIG,))})
    p = world.plan()
    assert [(a.kind, a.commit, a.reason) for a in p.actions] == [
        (ActionKind.DOWNLOAD, C2, p.actions[0].reason),
        (ActionKind.DELETE, C1, Reason.OLD_REVISION),
    ]
    assert p.withheld == ()


# ---------------------------------------------------------------- what stays


@pytest.mark.parametrize(
    "first",
    [m("left-alone", suspend=True), on_demand("evicted")],
    ids=["after-a-suspended-model", "after-an-evicted-model"],
)
def test_a_model_declared_after_one_that_needs_nothing_keeps_its_files(
    first: DesiredModel,
) -> None:
    world = World(models=(first, m("kept")), present=present("kept"), evicted={"evicted"})
    assert cleanup(world).deletions == ()


def test_a_file_the_hub_does_not_list_stays_while_the_patterns_select_it() -> None:
    local = RemoteFile("local.json", 5, "9" * 40)
    world = World(models=(m("a"),), present=present("a"), extra={"org/a": {C1: (local,)}})
    assert cleanup(world).deletions == ()


def test_an_eviction_leaves_what_another_model_needs() -> None:
    json_only = DesiredModel(name="json", repo="org/b", include=("*.json",))
    world = World(models=(json_only, on_demand("b")), present=present("b"))
    assert list(cleanup(world).deletions) == [
        deletion(
            "b", fw(WEIGHTS), WEIGHTS.size, Reason.UNUSED, f"{UNUSED} when requested; frees 1.0 kB"
        )
    ]


def test_a_model_with_work_in_the_plan_is_not_evicted_and_says_so() -> None:
    world = World(
        models=(m("a"), on_demand("b")),
        present={"org/a": (C1, FILES), "org/b": (C1, (CONFIG,))},  # b's weights to download
        usage={"b": (0.01, NOW)},
    )
    (error,) = world.plan(SIZE).errors
    assert "b (has other work in this plan)" in error

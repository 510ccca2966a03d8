"""Retention is planned by a pure function: tables of (manifest, cache, state) in, deletions out.

Each case builds a cache where every model is present and verified unless it says otherwise,
owned by modelsync (downloaded 60 days ago) unless it says otherwise, and never used; each
model's refs/main was written (moved) 60 days ago unless it says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from controller.domain import (
    ActionKind,
    CachedFile,
    CachedRepo,
    DeletionRecord,
    DesiredModel,
    DesiredState,
    Eviction,
    FileWork,
    Lease,
    Observation,
    OwnedFile,
    Plan,
    Policy,
    Priority,
    Reason,
    RemoteFile,
    RemoteRevision,
    RetentionMode,
    RetentionPolicy,
    UpdatePolicy,
    UsageStats,
    Verification,
)
from controller.domain.budget import Budget
from controller.planning.planner import plan
from reconcilers.retention import OLD_REVISION_GRACE
from tests.support.factories import C1, C2, CONFIG, NOW, WEIGHTS

LONG_AGO = NOW - timedelta(days=60)
FILES = (CONFIG, WEIGHTS)
SIZE = CONFIG.size + WEIGHTS.size  # 1010: one model's bytes
NEW_WEIGHTS = RemoteFile("model.safetensors", 2000, "e" * 40, sha256="f" * 64)


def m(name: str, **kw: object) -> DesiredModel:
    return DesiredModel(name=name, repo=f"org/{name}", **kw)  # type: ignore[arg-type]


def on_demand(name: str, **kw: object) -> DesiredModel:
    return m(name, policy=Policy.ON_DEMAND, **kw)


@dataclass
class World:
    """A cache and a state store, described the way the cases need them."""

    models: tuple[DesiredModel, ...]
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    present: dict[str, tuple[str, tuple[RemoteFile, ...]]] = field(default_factory=dict)
    extra: dict[str, dict[str, tuple[RemoteFile, ...]]] = field(default_factory=dict)
    foreign: set[tuple[str, str]] = field(default_factory=set)  # (repo, commit) not ours
    since: dict[str, datetime] = field(default_factory=dict)  # model -> downloaded at
    usage: dict[str, tuple[float, datetime | None]] = field(default_factory=dict)
    leases: set[str] = field(default_factory=set)
    requested: set[str] = field(default_factory=set)
    evicted: set[str] = field(default_factory=set)
    remote: dict[str, RemoteRevision] = field(default_factory=dict)
    pending: tuple[DeletionRecord, ...] = ()
    orphans: dict[str, dict[str, int]] = field(default_factory=dict)  # repo -> blob -> size
    switched: dict[str, datetime] = field(default_factory=dict)  # repo -> refs/main's mtime
    owners: dict[str, str] = field(default_factory=dict)  # repo -> the model that downloaded it

    def declared(self) -> DesiredState:
        return DesiredState(
            models=self.models,
            cache_dir="/cache",
            state_dir="/state",
            endpoint="http://hub",
            generation="g",
            status_file="/state/status.yaml",
            retention=self.retention,
        )

    def observation(self) -> Observation:
        snapshots: dict[str, dict[str, dict[str, CachedFile]]] = {}
        refs: dict[str, dict[str, str]] = {}
        owned: list[OwnedFile] = []
        verifications: dict[tuple[str, str], Verification] = {}
        owner = {mod.repo: mod.name for mod in self.models} | self.owners

        def put(repo: str, commit: str, files: tuple[RemoteFile, ...], model: str) -> None:
            snap = snapshots.setdefault(repo, {}).setdefault(commit, {})
            for f in files:
                snap[f.path] = CachedFile(f.path, f.etag, f.size, mtime_ns=1, inode=1)
                verifications[(repo, f.etag)] = Verification(
                    f.etag, f.size, 1, 1, f.etag, True, NOW
                )
                if (repo, commit) not in self.foreign:
                    since = self.since.get(model, LONG_AGO)
                    owned.append(OwnedFile(repo, commit, f.path, model, False, since))

        for repo, (commit, files) in self.present.items():
            put(repo, commit, files, owner.get(repo, repo.split("/")[1]))
            refs.setdefault(repo, {})["main"] = commit
        for repo, commits in self.extra.items():
            for commit, files in commits.items():
                put(repo, commit, files, owner.get(repo, repo.split("/")[1]))
        cache = {
            repo: CachedRepo(
                repo,
                refs=refs.get(repo, {}),
                ref_times={ref: self.switched.get(repo, LONG_AGO) for ref in refs.get(repo, {})},
                snapshots=snaps,
                blobs={
                    **{e.blob: e.size for files in snaps.values() for e in files.values()},
                    **self.orphans.get(repo, {}),
                },
            )
            for repo, snaps in snapshots.items()
        }
        for repo, blobs in self.orphans.items():
            cache.setdefault(repo, CachedRepo(repo, blobs=blobs))
        return Observation(
            cache=cache,
            remote={
                mod.name: self.remote.get(mod.name) or RemoteRevision(mod.repo, "main", C1, FILES)
                for mod in self.models
            },
            verifications=verifications,
            disk=None,
            usage={
                name: UsageStats(round(rate * 30), rate, last, None, None)
                for name, (rate, last) in self.usage.items()
            },
            requested=frozenset(self.requested),
            owned=tuple(owned),
            leases={name: (lease(name),) for name in sorted(self.leases)},
            pending_deletions=self.pending,
            evicted={
                name: Eviction(name, Reason.UNUSED, "unused", LONG_AGO) for name in self.evicted
            },
        )

    def plan(self, budget: int | None = None) -> Plan:
        chosen = None if budget is None else Budget(budget, "--budget-bytes")
        return plan(self.declared(), self.observation(), NOW, budget=chosen)


def lease(model: str) -> Lease:
    return Lease("l-" + model, model, "pid 7 on gpu-1", 7, "gpu-1", NOW, NOW, 60.0)


def present(*names: str, commit: str = C1) -> dict[str, tuple[str, tuple[RemoteFile, ...]]]:
    return {f"org/{n}": (commit, FILES) for n in names}


def deletions(p: Plan) -> list[tuple[str, str]]:
    return [(a.model, a.reason.value) for a in p.actions if a.kind is ActionKind.DELETE]


def withheld(p: Plan) -> list[tuple[str, str, str]]:
    return [(w.action.model, w.action.reason.value, w.reason.value) for w in p.withheld]


MOVED = (CONFIG, NEW_WEIGHTS)


def moved(ago: timedelta, models: tuple[DesiredModel, ...] = (m("a"),), **kw: Any) -> World:
    """Model ``a`` after its refs/main moved from C1 to C2, ``ago`` before NOW; the old
    revision is still on disk."""
    return World(
        models=models,
        present={"org/a": (C2, MOVED)},
        extra={"org/a": {C1: FILES}},
        remote={"a": RemoteRevision("org/a", "main", C2, MOVED)},
        switched={"org/a": NOW - ago},
        **kw,
    )


# Each case: the world, a budget in bytes (None: none), and what the plan must show:
# deletions (model, rule) in order, withheld (model, rule, why), whether it fits.
CASES = [
    pytest.param(
        World(models=(m("kept"),), present=present("kept", "gone")),
        None,
        [("gone", "RemovedFromManifest")],
        [],
        True,
        id="removed-from-manifest",
    ),
    pytest.param(
        World(models=(m("kept"),), present=present("kept", "theirs"), foreign={("org/theirs", C1)}),
        None,
        [],
        [],
        True,
        id="unmanaged-is-never-deleted",
    ),
    pytest.param(
        World(models=(m("kept"),), present=present("kept", "gone"), leases={"gone"}),
        None,
        [],
        [("gone", "RemovedFromManifest", "InUse")],
        True,
        id="removed-but-in-use-waits",
    ),
    pytest.param(
        World(models=(on_demand("idle"),), present=present("idle")),
        None,
        [("idle", "Unused")],
        [],
        True,
        id="on-demand-unused-60-days",
    ),
    pytest.param(
        World(models=(on_demand("idle"),), present=present("idle"), usage={"idle": (0.03, NOW)}),
        None,
        [],
        [],
        True,
        id="on-demand-used-today-stays",
    ),
    pytest.param(
        World(models=(m("always"),), present=present("always")),
        None,
        [],
        [],
        True,
        id="always-is-never-unused",
    ),
    pytest.param(
        World(models=(on_demand("vip", priority=Priority.HIGH),), present=present("vip")),
        None,
        [],
        [],
        True,
        id="preserve-high-priority",
    ),
    pytest.param(
        World(
            models=(on_demand("vip", priority=Priority.HIGH),),
            present=present("vip"),
            retention=RetentionPolicy(preserve_high_priority=False),
        ),
        None,
        [("vip", "Unused")],
        [],
        True,
        id="high-priority-unprotected-when-disabled",
    ),
    pytest.param(
        World(
            models=(on_demand("idle"),),
            present=present("idle"),
            retention=RetentionPolicy(max_unused_days=90),
        ),
        None,
        [],
        [],
        True,
        id="within-max-unused-days",
    ),
    pytest.param(
        World(models=(on_demand("idle"),), present=present("idle"), requested={"idle"}),
        None,
        [],
        [],
        True,
        id="requested-is-never-evicted",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("theirs")),
            present=present("a", "theirs"),
            foreign={("org/theirs", C1)},
        ),
        SIZE,
        [],
        [],
        False,
        id="not-owned-on-demand-is-not-evicted",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("theirs", adopt=True)),
            present=present("a", "theirs"),
            foreign={("org/theirs", C1)},
            retention=RetentionPolicy(preserve_recently_downloaded=False),
        ),
        SIZE,
        [("theirs", "OverBudget")],
        [],
        True,
        id="adopt-true-makes-it-evictable",
    ),
    # ---------------------------------------------------------------- the budget
    pytest.param(
        World(
            models=(m("a"), on_demand("b"), on_demand("c")),
            present=present("a", "b", "c"),
            usage={"b": (0.05, NOW), "c": (0.01, NOW)},
        ),
        2 * SIZE,
        [("c", "OverBudget")],
        [],
        True,
        id="over-budget-evicts-the-least-used-first",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b", priority=Priority.MEDIUM), on_demand("c")),
            present=present("a", "b", "c"),
            usage={"b": (0.01, NOW), "c": (0.05, NOW)},
        ),
        2 * SIZE,
        [("c", "OverBudget")],
        [],
        True,
        id="over-budget-lowest-priority-before-usage",
    ),
    pytest.param(
        World(
            models=(on_demand("b"), on_demand("c")),
            present=present("b", "c"),
            usage={"b": (0.02, NOW - timedelta(days=1)), "c": (0.02, NOW - timedelta(days=9))},
        ),
        SIZE,
        [("c", "OverBudget")],
        [],
        True,
        id="same-usage-longest-unused-first",
    ),
    pytest.param(
        World(models=(m("a"), m("b")), present=present("a", "b")),
        SIZE,
        [],
        [],
        False,
        id="always-models-over-budget-cannot-fit",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b"), on_demand("c")),
            present=present("a", "b", "c"),
            usage={"b": (0.01, NOW), "c": (0.01, NOW)},
            leases={"b"},
        ),
        2 * SIZE,
        [("c", "OverBudget")],
        [("b", "OverBudget", "InUse")],
        True,
        id="in-use-is-skipped-for-the-next-candidate",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b")),
            present=present("a", "b"),
            usage={"b": (0.01, NOW)},
            leases={"b"},
        ),
        SIZE,
        [],
        [("b", "OverBudget", "InUse")],
        False,
        id="in-use-over-budget-fails-and-says-why",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b")),
            present=present("a", "b"),
            usage={"b": (0.5, NOW)},
        ),
        SIZE,
        [],
        [],
        False,
        id="used-more-than-min-usage-frequency-stays",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b")),
            present=present("a", "b"),
            since={"b": NOW - timedelta(days=2)},
        ),
        SIZE,
        [],
        [],
        False,
        id="recent-download-beats-the-budget",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b")),
            present=present("a", "b"),
            since={"b": NOW - timedelta(days=2)},
            retention=RetentionPolicy(preserve_recently_downloaded=False),
        ),
        SIZE,
        [("b", "OverBudget")],
        [],
        True,
        id="recent-download-unprotected-when-disabled",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b", priority=Priority.CRITICAL)),
            present=present("a", "b"),
            usage={"b": (0.01, NOW)},
        ),
        SIZE,
        [],
        [],
        False,
        id="priority-beats-the-budget",
    ),
    pytest.param(
        World(models=(m("a"), m("b")), present=present("a", "b", "gone")),
        2 * SIZE,
        [("gone", "RemovedFromManifest")],
        [],
        True,
        id="removed-models-count-as-freed",
    ),
    pytest.param(
        World(
            models=(m("a"), on_demand("b")),
            present=present("a", "b"),
            retention=RetentionPolicy(mode=RetentionMode.RECOMMEND),
            usage={"b": (0.01, NOW)},
        ),
        SIZE,
        [],
        [("b", "OverBudget", "RecommendOnly")],
        True,
        id="recommend-mode-applies-nothing",
    ),
    # ---------------------------------------------------------------- old revisions
    pytest.param(
        moved(timedelta(minutes=3)),
        None,
        [],
        [("a", "OldRevision", "GracePeriod")],
        True,
        id="old-revision-within-the-grace-period-waits",
    ),
    pytest.param(
        moved(timedelta(minutes=11)),
        None,
        [("a", "OldRevision")],
        [],
        True,
        id="old-revision-after-the-grace-period-goes",
    ),
    pytest.param(
        moved(OLD_REVISION_GRACE),
        None,
        [("a", "OldRevision")],
        [],
        True,
        id="old-revision-goes-the-moment-the-grace-period-ends",
    ),
    pytest.param(
        moved(
            timedelta(minutes=30), retention=RetentionPolicy(old_revision_grace=timedelta(hours=1))
        ),
        None,
        [],
        [("a", "OldRevision", "GracePeriod")],
        True,
        id="old-revision-grace-from-the-manifest",
    ),
    pytest.param(
        moved(timedelta(minutes=3), leases={"a"}),
        None,
        [],
        [("a", "OldRevision", "InUse")],
        True,
        id="old-revision-in-grace-and-in-use-waits-for-the-lease",
    ),
    pytest.param(
        moved(timedelta(minutes=11)),
        SIZE + NEW_WEIGHTS.size - WEIGHTS.size,  # fits only without the old weights
        [("a", "OldRevision")],
        [],
        True,
        id="old-revision-after-grace-makes-the-budget-fit",
    ),
    pytest.param(
        moved(timedelta(minutes=3), models=(m("b"),)),
        None,
        [("a", "RemovedFromManifest"), ("a", "RemovedFromManifest")],  # both revisions
        [],
        True,
        id="a-removed-model-has-no-grace-period",
    ),
    pytest.param(
        World(
            models=(m("a", include=("*.json",)),),
            present=present("a"),
            switched={"org/a": NOW - timedelta(minutes=1)},
        ),
        None,
        [("a", "NotSelected")],
        [],
        True,
        id="files-no-longer-selected-have-no-grace-period",
    ),
]


@pytest.mark.parametrize(("world", "budget", "deleted", "held", "fits"), CASES)
def test_retention_table(
    world: World,
    budget: int | None,
    deleted: list[tuple[str, str]],
    held: list[tuple[str, str, str]],
    fits: bool,
) -> None:
    p = world.plan(budget)
    assert deletions(p) == deleted
    assert withheld(p) == held
    assert not p.errors if fits else len(p.errors) == 1
    if budget is not None:
        assert p.budget is not None and p.budget.fits is fits


def test_a_deletion_names_its_bytes_and_rule() -> None:
    p = World(models=(m("kept"),), present=present("kept", "gone")).plan()
    (action,) = p.actions
    assert (action.kind, action.model, action.repo, action.commit) == (
        ActionKind.DELETE,
        "gone",
        "org/gone",
        C1,
    )
    assert action.bytes == SIZE and p.freed_bytes == SIZE and p.download_bytes == 0
    assert [f.path for f in action.files] == ["config.json", "model.safetensors"]
    assert action.message == "no manifest declares gone any more; 2 files; frees 1.0 kB"


def test_unmanaged_repos_are_reported_with_their_size() -> None:
    world = World(
        models=(m("kept"),), present=present("kept", "theirs"), foreign={("org/theirs", C1)}
    )
    p = world.plan()
    assert [(u.repo, u.bytes, u.commits) for u in p.unmanaged] == [("org/theirs", SIZE, (C1,))]


def test_impossible_budget_error_has_the_numbers_and_the_reasons() -> None:
    world = World(
        models=(m("a"), on_demand("b"), on_demand("c", priority=Priority.HIGH)),
        present=present("a", "b", "c"),
        leases={"b"},
    )
    (error,) = world.plan(SIZE).errors
    assert error == (
        "the plan does not fit the disk budget: 3.0 kB (3030 bytes) on disk + 0 B (0 bytes) to "
        "transfer = 3.0 kB (3030 bytes), 2.0 kB (2020 bytes) more than the budget of 1.0 kB "
        "(1010 bytes) (--budget-bytes); not even after every allowed eviction (a (policy "
        "always); b (in use (pid 7 on gpu-1)); c (priority high (preserve_high_priority))); "
        "raise the budget, free space on the machine, or narrow the models' include patterns"
    )


def test_the_budget_counts_transfers_and_deletions() -> None:
    world = World(models=(m("a"), m("new")), present=present("a", "gone"))
    p = world.plan(2 * SIZE)
    fit = p.budget
    assert fit is not None
    assert (fit.on_disk, fit.transfers, fit.freed, fit.total) == (2 * SIZE, SIZE, SIZE, 2 * SIZE)
    assert [a.kind.value for a in p.actions] == ["download", "delete"]  # deletions come last


def test_a_blob_two_revisions_share_is_counted_once() -> None:
    shared = (CONFIG, WEIGHTS)
    world = World(
        models=(m("a"),),
        present=present("a"),
        extra={"org/a": {C2: shared}},
        foreign={("org/a", C2)},
    )
    fit = world.plan(10 * SIZE).budget
    assert fit is not None and fit.on_disk == SIZE


def test_an_old_revision_goes_and_frees_only_what_it_does_not_share() -> None:
    p = moved(timedelta(days=1)).plan()
    (action,) = p.actions
    assert (action.model, action.reason, action.commit) == ("a", Reason.OLD_REVISION, C1)
    assert action.bytes == WEIGHTS.size  # config.json is the new revision's too


def test_an_update_holds_back_the_old_revision_it_replaces() -> None:
    world = World(
        models=(m("a", updates=UpdatePolicy.AUTO),),
        present=present("a"),
        remote={"a": RemoteRevision("org/a", "main", C2, MOVED)},
    )
    p = world.plan()
    assert [(a.kind.value, a.commit, a.bytes) for a in p.actions] == [
        ("update", C2, NEW_WEIGHTS.size)
    ]
    # The ref moves during this apply: the old revision waits for the switch, and then for
    # the grace period after it.
    (held,) = p.withheld
    assert (held.action.kind, held.action.commit, held.action.reason, held.reason) == (
        ActionKind.DELETE,
        C1,
        Reason.OLD_REVISION,
        Reason.GRACE_PERIOD,
    )
    assert held.action.bytes == WEIGHTS.size  # the config blob is linked into C2 by the update
    assert held.message == (
        "kept for 10 minutes after refs/main moves, for applications that resolved it before "
        "the switch"
    )


def test_after_the_switch_the_old_revision_waits_until_a_stated_time() -> None:
    p = moved(timedelta(minutes=3)).plan()
    assert p.actions == ()
    (held,) = p.withheld
    assert held.message == (
        "kept until 12:07:00 UTC for applications that resolved it before the switch"
    )
    assert held.action.message.startswith("a moved from 111111111111 to 222222222222;")
    # A long grace period ending on another day names the day.
    week = RetentionPolicy(old_revision_grace=timedelta(days=7))
    (held,) = moved(timedelta(minutes=3), retention=week).plan().withheld
    assert held.message.startswith("kept until 2026-12-03 11:57:00 UTC ")


def old_revision_and(*others: str, ago: timedelta = timedelta(minutes=3)) -> World:
    """``moved``, plus on-demand models ``others`` (present, used 0.01/day)."""
    world = moved(ago, models=(m("a"), *(on_demand(o) for o in others)))
    return replace(
        world,
        present={**world.present, **present(*others)},
        usage={o: (0.01, NOW) for o in others},
    )


def test_an_old_revision_in_its_grace_period_waits_even_over_budget() -> None:
    """It fits once the old revision goes: until then the plan is over budget (a warning),
    and no other model is evicted for room the old revision makes within minutes."""
    only_once_gone = SIZE + NEW_WEIGHTS.size - WEIGHTS.size + SIZE
    p = old_revision_and("b").plan(only_once_gone)
    assert deletions(p) == [] and withheld(p) == [("a", "OldRevision", "GracePeriod")]
    assert p.errors == () and p.budget is not None and not p.budget.fits
    (warning,) = p.warnings
    assert warning.startswith("over the disk budget until the grace period of old revisions ")
    assert warning.endswith(
        "; old revisions of a (1.0 kB) stay until their grace period ends "
        "(retention.old_revision_grace)"
    )
    # After the grace period the old revision goes, and that is enough.
    later = old_revision_and("b", ago=timedelta(minutes=11)).plan(only_once_gone)
    assert deletions(later) == [("a", "OldRevision")] and later.warnings == ()
    assert later.budget is not None and later.budget.fits


def test_a_budget_too_small_even_after_the_grace_period_evicts_and_says_what_waits() -> None:
    p = old_revision_and("b").plan(NEW_WEIGHTS.size)  # not even a's new revision alone
    assert deletions(p) == [("b", "OverBudget")]
    (error,) = p.errors
    assert error.startswith("the plan does not fit the disk budget: ")
    assert (
        "(a (policy always)); old revisions of a (1.0 kB) stay until their grace period ends "
        "(retention.old_revision_grace); raise the budget"
    ) in error


def test_a_lease_holds_back_an_update() -> None:
    moved = (CONFIG, NEW_WEIGHTS)
    world = World(
        models=(m("a", updates=UpdatePolicy.AUTO),),
        present=present("a"),
        remote={"a": RemoteRevision("org/a", "main", C2, moved)},
        leases={"a"},
    )
    p = world.plan()
    assert p.actions == ()
    (held,) = p.withheld
    assert (held.action.kind, held.reason) == (ActionKind.UPDATE, Reason.IN_USE)
    assert held.message == (
        "in use (pid 7 on gpu-1); refs/main stays at 111111111111 until the lease ends"
    )


def test_narrowed_include_deletes_the_files_no_longer_selected() -> None:
    world = World(models=(m("a", include=("*.json",)),), present=present("a"))
    p = world.plan()
    assert [(a.reason, [f.path for f in a.files]) for a in p.actions] == [
        (Reason.NOT_SELECTED, ["model.safetensors"])
    ]


def test_a_suspended_model_keeps_its_whole_repo() -> None:
    world = World(
        models=(m("a", suspend=True),), present=present("a"), extra={"org/a": {C2: FILES}}
    )
    assert world.plan().actions == ()


def test_an_evicted_model_is_not_fetched_again_until_requested() -> None:
    partial = {"org/idle": (C1, (CONFIG,))}  # shared with nothing; an eviction left it
    world = World(models=(on_demand("idle"),), present=partial, evicted={"idle"})
    p = world.plan()
    # What the eviction left goes too, under the eviction's rule; nothing is fetched.
    assert [(a.kind, a.reason) for a in p.actions] == [(ActionKind.DELETE, Reason.UNUSED)]
    asked = replace(world, requested={"idle"})
    assert [a.kind for a in asked.plan().actions] == [ActionKind.DOWNLOAD]


def test_an_interrupted_deletion_is_finished_first() -> None:
    record = DeletionRecord(
        id=3,
        model="gone",
        repo="org/gone",
        commit=C1,
        reason=Reason.REMOVED_FROM_MANIFEST,
        message="no manifest declares gone any more",
        files=(
            FileWork(CONFIG.path, CONFIG.size, CONFIG.etag),
            FileWork(WEIGHTS.path, 1000, WEIGHTS.etag),
        ),
        started_at=NOW - timedelta(hours=1),
    )
    # Killed between unlinking the snapshot and removing the blobs: only orphans are left.
    world = World(
        models=(m("a"),),
        present=present("a"),
        orphans={"org/gone": {CONFIG.etag: CONFIG.size, WEIGHTS.etag: WEIGHTS.size}},
        pending=(record,),
    )
    p = world.plan(SIZE)
    (action,) = p.actions
    assert (action.model, action.reason, action.bytes) == ("gone", Reason.INTERRUPTED, SIZE)
    assert action.message.startswith("finishing the deletion killed at 2026-11-26 11:00:00 UTC")
    assert p.budget is not None and p.budget.on_disk == 2 * SIZE and p.budget.fits


def test_a_second_plan_after_the_deletions_is_empty() -> None:
    world = World(models=(m("kept"),), present=present("kept"))
    assert world.plan(SIZE).actions == () and world.plan(SIZE).withheld == ()


def test_same_inputs_same_retention_plan() -> None:
    world = World(
        models=(m("a"), on_demand("b"), on_demand("c")),
        present=present("a", "b", "c", "gone"),
        usage={"b": (0.01, NOW), "c": (0.01, NOW)},
    )
    assert world.plan(2 * SIZE) == world.plan(2 * SIZE)


def test_a_model_requested_again_mid_eviction_keeps_what_it_needs() -> None:
    record = DeletionRecord(
        id=4,
        model="idle",
        repo="org/idle",
        commit=C1,
        reason=Reason.UNUSED,
        message="unused",
        files=tuple(FileWork(f.path, f.size, f.etag) for f in FILES),
        started_at=NOW - timedelta(hours=1),
    )
    world = World(
        models=(on_demand("idle"),),
        present={"org/idle": (C1, (CONFIG,))},  # killed after unlinking the weights
        pending=(record,),
        requested={"idle"},
    )
    download, finish = world.plan().actions
    assert (download.kind, [f.path for f in download.files]) == (
        ActionKind.DOWNLOAD,
        ["model.safetensors"],
    )
    # The journal is closed, and nothing the download puts back is taken.
    assert (finish.kind, finish.reason, finish.files) == (ActionKind.DELETE, Reason.INTERRUPTED, ())

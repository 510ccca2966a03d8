"""The planner is pure: tables of (desired, observed) in, ordered actions out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.domain import (
    ActionKind,
    CachedFile,
    CachedRepo,
    DesiredModel,
    Disk,
    Observation,
    PartialFile,
    Policy,
    Priority,
    Reason,
    RemoteFile,
    RemoteProblem,
    RemoteRevision,
    UpdatePolicy,
    UsageStats,
    Verification,
)
from controller.planning.planner import QueueEntry, effective_priority, plan, queue
from tests.support.factories import C1, C2, CONFIG, NOW, README, WEIGHTS, desired

FILES = (CONFIG, README, WEIGHTS)


def model(name: str = "m", repo: str = "org/m", **kw: object) -> DesiredModel:
    return DesiredModel(name=name, repo=repo, **kw)  # type: ignore[arg-type]


def remote(
    repo: str = "org/m", commit: str = C1, files: tuple[RemoteFile, ...] = FILES
) -> RemoteRevision:
    return RemoteRevision(repo=repo, revision="main", commit=commit, files=files)


def entry(f: RemoteFile, inode: int = 7, size: int | None = None) -> CachedFile:
    return CachedFile(f.path, f.etag, f.size if size is None else size, mtime_ns=100, inode=inode)


def cached(
    repo: str = "org/m",
    commit: str = C1,
    files: tuple[RemoteFile, ...] = FILES,
    ref: str | None = "main",
    **entry_kw: object,
) -> CachedRepo:
    return CachedRepo(
        repo=repo,
        refs={ref: commit} if ref else {},
        snapshots={commit: {f.path: entry(f, **entry_kw) for f in files}},
    )  # type: ignore[arg-type]


def verified(
    repo: str = "org/m", files: tuple[RemoteFile, ...] = FILES, ok: bool = True, inode: int = 7
) -> dict[tuple[str, str], Verification]:
    return {
        (repo, f.etag): Verification(
            f.etag, f.size, 100, inode, f.etag if ok else "0" * 64, ok, NOW
        )
        for f in files
    }


def observation(
    cache: dict[str, CachedRepo] | None = None,
    remote_by_model: dict[str, RemoteRevision | RemoteProblem] | None = None,
    verifications: dict[tuple[str, str], Verification] | None = None,
) -> Observation:
    return Observation(
        cache=cache or {},
        remote=remote_by_model or {"m": remote()},
        verifications=verifications or {},
        disk=None,
    )


def kinds(p: object) -> list[tuple[str, str, tuple[str, ...], str]]:
    return [
        (a.kind.value, a.model, tuple(f.path for f in a.files), a.reason.value) for a in p.actions
    ]  # type: ignore[attr-defined]


ALL = ("README.md", "config.json", "model.safetensors")

CASES = [
    pytest.param(model(), observation(), [("download", "m", ALL, "Missing")], id="empty-cache"),
    pytest.param(
        model(), observation({"org/m": cached()}, verifications=verified()), [], id="in-sync"
    ),
    pytest.param(
        model(),
        observation({"org/m": cached()}),
        [("verify", "m", ALL, "Unverified")],
        id="adopt-unverified",
    ),
    pytest.param(
        model(),
        observation({"org/m": cached(files=(CONFIG, WEIGHTS))}, verifications=verified()),
        [("download", "m", ("README.md",), "Incomplete")],
        id="one-file-missing",
    ),
    pytest.param(
        model(),
        observation(
            {"org/m": cached()},
            verifications={**verified(), **verified(files=(WEIGHTS,), ok=False)},
        ),
        [("repair", "m", ("model.safetensors",), "Corrupted")],
        id="checksum-bad",
    ),
    pytest.param(
        model(),
        observation({"org/m": cached(size=3)}, verifications=verified()),
        [("repair", "m", ALL, "Corrupted")],
        id="size-mismatch",
    ),
    pytest.param(
        model(),
        observation({"org/m": cached()}, verifications=verified(inode=8)),
        [("verify", "m", ALL, "Unverified")],
        id="record-no-longer-describes-file",
    ),
    pytest.param(
        model(include=("*.json", "*.safetensors")),
        observation(),
        [("download", "m", ("config.json", "model.safetensors"), "Missing")],
        id="include",
    ),
    pytest.param(
        model(exclude=("*.md",)),
        observation(),
        [("download", "m", ("config.json", "model.safetensors"), "Missing")],
        id="exclude",
    ),
    pytest.param(model(suspend=True), observation(), [], id="suspended"),
    pytest.param(model(policy=Policy.ON_DEMAND), observation(), [], id="on-demand-unrequested"),
    pytest.param(
        model(policy=Policy.ON_DEMAND),
        observation({"org/m": cached(files=(CONFIG,))}, verifications=verified()),
        [("download", "m", ("README.md", "model.safetensors"), "Incomplete")],
        id="on-demand-partially-present-is-finished",
    ),
    pytest.param(
        model(),
        observation({"org/m": cached(ref=None)}, verifications=verified()),
        [("update", "m", (), "RevisionChanged")],
        id="ref-missing-points-it",
    ),
    pytest.param(
        model(revision=C1),
        observation({"org/m": cached(ref=None)}, verifications=verified()),
        [],
        id="commit-revision-needs-no-ref",
    ),
]


@pytest.mark.parametrize(("the_model", "observed", "expected"), CASES)
def test_plan_table(
    the_model: DesiredModel,
    observed: Observation,
    expected: list[tuple[str, str, tuple[str, ...], str]],
) -> None:
    assert kinds(plan(desired(the_model), observed, NOW)) == expected


def test_download_bytes_and_totals() -> None:
    p = plan(desired(model()), observation(), NOW)
    assert p.actions[0].bytes == 1015
    assert p.download_bytes == 1015 and p.verify_bytes == 0


NEW_WEIGHTS = RemoteFile("model.safetensors", 2000, "e" * 40, sha256="f" * 64)
MOVED = (CONFIG, README, NEW_WEIGHTS)


@pytest.mark.parametrize(
    ("updates", "expected"),
    [
        (UpdatePolicy.AUTO, [("update", "m", ALL, "UpstreamMoved")]),
        (UpdatePolicy.NOTIFY, []),
        (UpdatePolicy.OFF, []),
    ],
)
def test_branch_moved(updates: UpdatePolicy, expected: list[object]) -> None:
    observed = observation({"org/m": cached()}, {"m": remote(commit=C2, files=MOVED)}, verified())
    assert kinds(plan(desired(model(updates=updates)), observed, NOW)) == expected


def test_update_transfers_only_changed_blobs() -> None:
    observed = observation({"org/m": cached()}, {"m": remote(commit=C2, files=MOVED)}, verified())
    (action,) = plan(desired(model(updates=UpdatePolicy.AUTO)), observed, NOW).actions
    assert action.bytes == NEW_WEIGHTS.size
    assert "1 changed file," in action.message and "2 unchanged files linked" in action.message


def test_notify_verifies_the_served_snapshot_not_the_new_one() -> None:
    observed = observation({"org/m": cached()}, {"m": remote(commit=C2, files=MOVED)})
    p = plan(desired(model(updates=UpdatePolicy.NOTIFY)), observed, NOW)
    assert [(a.kind, a.commit) for a in p.actions] == [(ActionKind.VERIFY, C1)]


def test_hub_unreachable_with_nothing_cached_is_an_error() -> None:
    problem = RemoteProblem(Reason.HUB_UNREACHABLE, "connection refused")
    p = plan(desired(model()), observation(remote_by_model={"m": problem}), NOW)
    assert p.actions == () and p.errors == ("m: connection refused",)


def test_hub_unreachable_with_verified_cache_is_a_warning() -> None:
    problem = RemoteProblem(Reason.HUB_UNREACHABLE, "connection refused")
    observed = observation({"org/m": cached()}, {"m": problem}, verified())
    p = plan(desired(model()), observed, NOW)
    assert p.actions == () and p.errors == ()
    assert any("connection refused" in w for w in p.warnings)


def test_no_matching_files_is_an_error() -> None:
    p = plan(desired(model(include=("*.gguf",))), observation(), NOW)
    assert p.actions == () and "no file" in p.errors[0]


def test_order_repair_then_verify_then_downloads_by_priority_then_name() -> None:
    models = (
        model("low-b", "org/b", priority=Priority.LOW),
        model("crit", "org/c", priority=Priority.CRITICAL),
        model("low-a", "org/a", priority=Priority.LOW),
        model("broken", "org/d", priority=Priority.LOW),
        model("adopted", "org/e", priority=Priority.LOW),
    )
    observed = Observation(
        cache={"org/d": cached("org/d"), "org/e": cached("org/e")},
        remote={m.name: remote(m.repo) for m in models},
        verifications={**verified("org/d", ok=False)},
        disk=None,
    )
    p = plan(desired(*models), observed, NOW)
    assert [(a.kind.value, a.model) for a in p.actions] == [
        ("repair", "broken"),
        ("verify", "adopted"),
        ("download", "crit"),
        ("download", "low-a"),
        ("download", "low-b"),
    ]


def used(per_day: float) -> UsageStats:
    return UsageStats(
        uses=round(per_day * 30),
        uses_per_day=per_day,
        last_used=NOW,
        average_generation_seconds=None,
        performance_score=None,
    )


def missing_everywhere(*models: DesiredModel, **usage: float) -> Observation:
    return Observation(
        cache={},
        remote={m.name: remote(m.repo) for m in models},
        verifications={},
        disk=None,
        usage={name: used(rate) for name, rate in usage.items()},
    )


def test_usage_orders_equal_priorities_and_never_lowers_declared() -> None:
    models = (model("a", "org/a"), model("b", "org/b"), model("c", "org/c", priority=Priority.HIGH))
    p = plan(desired(*models), missing_everywhere(*models, b=0.5, a=0.05), NOW)
    assert [a.model for a in p.actions] == ["c", "b", "a"]


# Per model: (declared priority, uses/day); then the expected order of their downloads.
ORDER_CASES = [
    pytest.param({"a": ("auto", 0), "b": ("auto", 0), "c": ("auto", 0)}, "abc", id="tie-by-name"),
    pytest.param(
        {"a": ("low", 0), "b": ("critical", 0), "c": ("medium", 0), "d": ("high", 0)},
        "bdca",
        id="declared-priorities",
    ),
    pytest.param(
        {"a": ("auto", 0.05), "b": ("auto", 0.5), "c": ("auto", 5)}, "cba", id="auto-from-usage"
    ),
    pytest.param(
        {"a": ("medium", 0.2), "b": ("medium", 0.9)}, "ba", id="same-priority-more-used-first"
    ),
    pytest.param(
        {"a": ("low", 0.1), "b": ("low", 0.1), "c": ("low", 0.0)},
        "abc",
        id="same-priority-same-usage-by-name",
    ),
    pytest.param(
        {"a": ("low", 2.0), "b": ("high", 0.0)}, "ab", id="usage-raises-low-to-high-then-usage"
    ),
    pytest.param(
        {"a": ("critical", 0.0), "b": ("auto", 50.0)}, "ab", id="usage-never-beats-critical"
    ),
    pytest.param(
        {"a": ("auto", 0.1), "b": ("low", 0.1001)}, "ba", id="threshold-is-strictly-more-than"
    ),
    pytest.param(
        {"a": ("high", 0.0), "b": ("auto", 1.01), "c": ("medium", 3.0)},
        "cba",
        id="equal-effective-high-then-usage",
    ),
    pytest.param(
        {"a": ("medium", 0.0), "b": ("auto", 0.5)}, "ba", id="declared-equals-usage-then-usage"
    ),
]


@pytest.mark.parametrize(("declared", "expected"), ORDER_CASES)
def test_download_order_table(declared: dict[str, tuple[str, float]], expected: str) -> None:
    models = tuple(
        model(name, f"org/{name}", priority=Priority(prio)) for name, (prio, _) in declared.items()
    )
    usage = {name: rate for name, (_, rate) in declared.items() if rate}
    # Declared in reverse, so the manifest's order cannot be what sorts them.
    p = plan(desired(*reversed(models)), missing_everywhere(*models, **usage), NOW)
    assert "".join(a.model for a in p.actions) == expected


def test_repairs_come_before_downloads_whatever_the_priority() -> None:
    broken = model("broken", "org/d", priority=Priority.LOW)
    wanted = model("wanted", "org/w", priority=Priority.CRITICAL)
    observed = Observation(
        cache={"org/d": cached("org/d")},
        remote={"broken": remote("org/d"), "wanted": remote("org/w")},
        verifications=verified("org/d", ok=False),
        disk=None,
        usage={"wanted": used(9.0)},
    )
    p = plan(desired(wanted, broken), observed, NOW)
    assert [(a.kind.value, a.model) for a in p.actions] == [
        ("repair", "broken"),
        ("download", "wanted"),
    ]


@pytest.mark.parametrize(
    ("declared", "rate", "priority", "reason"),
    [
        (Priority.AUTO, 0.0, Priority.LOW, "priority low (auto: 0 uses/day)"),
        (Priority.AUTO, 2.5, Priority.HIGH, "priority high (auto: 2.5 uses/day)"),
        (Priority.CRITICAL, 9.0, Priority.CRITICAL, "priority critical (declared)"),
        (
            Priority.LOW,
            0.5,
            Priority.MEDIUM,
            "priority medium (declared low, raised by usage: 0.5 uses/day)",
        ),
    ],
)
def test_each_action_says_why_it_has_its_priority(
    declared: Priority, rate: float, priority: Priority, reason: str
) -> None:
    m = model(priority=declared)
    observed = replace(observation(), usage={"m": used(rate)} if rate else {})
    (action,) = plan(desired(m), observed, NOW).actions
    assert (action.priority, action.priority_reason) == (priority, reason)


def test_requested_on_demand_model_is_planned_and_unrequested_is_not() -> None:
    m = model(policy=Policy.ON_DEMAND)
    assert plan(desired(m), observation(), NOW).actions == ()
    requested = replace(observation(), requested=frozenset({"m"}))
    assert kinds(plan(desired(m), requested, NOW)) == [("download", "m", ALL, "Missing")]


def test_queue_positions_and_bytes_ahead_follow_the_plan() -> None:
    models = (
        model("a", "org/a", priority=Priority.LOW),
        model("b", "org/b", priority=Priority.CRITICAL),
        model("c", "org/c", priority=Priority.LOW),
    )
    observed = Observation(
        cache={"org/c": cached("org/c")},  # present but unverified: a verify, no transfer
        remote={m.name: remote(m.repo) for m in models},
        verifications={},
        disk=None,
    )
    entries = queue(plan(desired(*models), observed, NOW))
    assert entries == {
        "c": QueueEntry(position=1, bytes_ahead=0, bytes=0),
        "b": QueueEntry(position=2, bytes_ahead=0, bytes=1015),
        "a": QueueEntry(position=3, bytes_ahead=1015, bytes=1015),
    }
    assert entries["a"].bytes_until_done == 2030


@pytest.mark.parametrize(
    ("declared", "uses", "expected"),
    [
        (Priority.AUTO, 0.0, Priority.LOW),
        (Priority.AUTO, 0.1, Priority.LOW),  # "more than 0.1": the boundary itself is low
        (Priority.AUTO, 3 / 30, Priority.LOW),  # 3 uses in a 30-day window
        (Priority.AUTO, 0.11, Priority.MEDIUM),
        (Priority.AUTO, 4 / 30, Priority.MEDIUM),
        (Priority.AUTO, 1.0, Priority.MEDIUM),  # "more than 1": the boundary itself is medium
        (Priority.AUTO, 1.5, Priority.HIGH),
        (Priority.AUTO, 1000.0, Priority.HIGH),  # usage alone never makes a model critical
        (Priority.LOW, 0.0, Priority.LOW),
        (Priority.LOW, 0.5, Priority.MEDIUM),
        (Priority.LOW, 2.0, Priority.HIGH),
        (Priority.MEDIUM, 0.0, Priority.MEDIUM),  # a declared priority is never lowered
        (Priority.MEDIUM, 5.0, Priority.HIGH),
        (Priority.HIGH, 0.0, Priority.HIGH),
        (Priority.HIGH, 0.5, Priority.HIGH),
        (Priority.CRITICAL, 0.0, Priority.CRITICAL),
        (Priority.CRITICAL, 50.0, Priority.CRITICAL),
    ],
)
def test_effective_priority(declared: Priority, uses: float, expected: Priority) -> None:
    assert effective_priority(model(priority=declared), uses) is expected


def test_same_inputs_same_plan() -> None:
    d = desired(model("x", "org/x"), model("y", "org/y"))
    o = Observation(
        cache={}, remote={"x": remote("org/x"), "y": remote("org/y")}, verifications={}, disk=None
    )
    assert plan(d, o, NOW) == plan(d, replace(o), NOW)


def test_a_plan_that_does_not_fit_the_disk_is_an_error() -> None:
    observed = replace(observation(), disk=Disk(total=10_000, free=500))
    p = plan(desired(model()), observed, NOW)
    assert len(p.actions) == 1
    assert p.errors == (
        "the plan transfers 1.0 kB but only 500 B is free on the cache's "
        "filesystem; free 515 B or narrow the models' include patterns",
    )


def test_a_plan_that_fits_has_no_error() -> None:
    observed = replace(observation(), disk=Disk(total=10_000, free=5_000))
    assert plan(desired(model()), observed, NOW).errors == ()


def test_a_resumable_partial_counts_only_the_missing_tail() -> None:
    repo = CachedRepo(
        repo="org/m",
        partials=(
            PartialFile(WEIGHTS.etag, 600, resumable=True),
            PartialFile(CONFIG.etag, 4, resumable=False),  # huggingface_hub's own: starts over
        ),
    )
    (action,) = plan(desired(model()), observation({"org/m": repo}), NOW).actions
    assert action.bytes == (WEIGHTS.size - 600) + CONFIG.size + README.size

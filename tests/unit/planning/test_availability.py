"""Answering a request is pure: tables of (desired, observed) in, ModelRequestResult out."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from controller.domain import (
    CachedFile,
    CachedRepo,
    DesiredModel,
    DesiredState,
    Disk,
    Observation,
    Phase,
    Policy,
    Priority,
    Reason,
    RemoteFile,
    RemoteProblem,
    RemoteRevision,
    UsageStats,
    Verification,
)
from controller.planning import availability
from controller.planning.availability import (
    ASSUMED_THROUGHPUT,
    ModelRequestResult,
    answer,
    snapshot,
)
from controller.planning.status import Failure
from tests.support.factories import C1, NOW, desired

MB = 1_000_000


def files(repo: str, size: int) -> tuple[RemoteFile, ...]:
    digest = hashlib.sha256(repo.encode()).hexdigest()
    return (RemoteFile("model.safetensors", size, digest[:40], sha256=digest),)


def model(name: str, **kw: object) -> DesiredModel:
    return DesiredModel(name=name, repo=f"org/{name}", **kw)  # type: ignore[arg-type]


def world(
    models: tuple[DesiredModel, ...],
    *,
    present: tuple[str, ...] = (),
    sizes: dict[str, int] | None = None,
    **changes: object,
) -> Observation:
    """Every model known to the hub (100 MB unless ``sizes`` says otherwise); those in
    ``present`` are in the cache and verified."""
    sizes = sizes or {}
    remote = {
        m.name: RemoteRevision(m.repo, "main", C1, files(m.repo, sizes.get(m.name, 100 * MB)))
        for m in models
    }
    cache: dict[str, CachedRepo] = {}
    verifications: dict[tuple[str, str], Verification] = {}
    for m in models:
        if m.name not in present:
            continue
        rev = remote[m.name]
        cache[m.repo] = CachedRepo(
            m.repo,
            refs={"main": C1},
            snapshots={C1: {f.path: CachedFile(f.path, f.etag, f.size, 1, 1) for f in rev.files}},
        )
        for f in rev.files:
            verifications[(m.repo, f.etag)] = Verification(f.etag, f.size, 1, 1, f.etag, True, NOW)
    observed = Observation(cache=cache, remote=remote, verifications=verifications, disk=None)
    return replace(observed, **changes)  # type: ignore[arg-type]


def ask(name: str, d: DesiredState, o: Observation, **hints: object) -> ModelRequestResult:
    return answer(name, d, snapshot(d, o, NOW, **hints))  # type: ignore[arg-type]


def test_available_model_succeeds_at_once() -> None:
    d = desired(model("a"))
    result = ask("a", d, world(d.models, present=("a",)))
    assert result.success and result.phase is Phase.AVAILABLE
    assert result.estimated_wait_seconds == 0.0
    assert (result.queue_position, result.action_required, result.error) == (None, None, None)
    assert result.alternatives == ()


def test_missing_model_waits_for_the_bytes_ahead_at_the_measured_rate() -> None:
    d = desired(model("first", priority=Priority.CRITICAL), model("second"))
    o = world(d.models, sizes={"first": 300 * MB, "second": 100 * MB}, throughput=50 * MB)
    result = ask("second", d, o)
    assert (result.success, result.phase, result.reason) == (False, Phase.MISSING, Reason.MISSING)
    assert result.queue_position == 2
    assert result.estimated_wait_seconds == 8.0  # (300 + 100) MB at 50 MB/s
    assert result.action_required == "run `reconcile --apply`"
    assert result.wait_detail == (
        "about 8 s: 400.0 MB to transfer, 300.0 MB of it ahead, at 50.0 MB/s (measured)"
    )


def test_a_wait_shorter_than_its_rounding_is_still_a_wait() -> None:
    d = desired(model("a"))
    o = world(d.models, sizes={"a": 1 * MB}, throughput=1000 * MB)
    result = ask("a", d, o)
    assert (result.phase, result.estimated_wait_seconds) == (Phase.MISSING, 0.1)


def test_before_any_download_the_wait_is_estimated_at_an_assumed_rate() -> None:
    d = desired(model("a"))
    result = ask("a", d, world(d.models))
    assert result.estimated_wait_seconds == 100 * MB / ASSUMED_THROUGHPUT
    assert result.wait_detail is not None
    assert result.wait_detail.endswith("at 10.0 MB/s (assumed until a download is measured)")


def test_alternatives_are_available_declared_ones_first_then_tag_mates() -> None:
    d = desired(
        model("wanted", tags=("video",), alternatives=("small", "absent-alt")),
        model("small"),
        model("absent-alt"),
        model("b-mate", tags=("video", "hd")),
        model("a-mate", tags=("video",)),
        model("unrelated", tags=("audio",)),
        model("missing-mate", tags=("video",)),
    )
    o = world(d.models, present=("small", "b-mate", "a-mate", "unrelated"))
    assert ask("wanted", d, o).alternatives == ("small", "a-mate", "b-mate")


def test_requesting_a_queued_on_demand_model_reports_its_place() -> None:
    d = desired(model("big", policy=Policy.ON_DEMAND, alternatives=("small",)), model("small"))
    o = world(d.models, present=("small",))
    unrequested = snapshot(d, o, NOW).report.model("big")
    assert unrequested is not None and unrequested.reason is Reason.NOT_REQUESTED

    result = ask("big", d, replace(o, requested=frozenset({"big"})))
    assert (result.phase, result.reason, result.queue_position) == (
        Phase.QUEUED,
        Reason.REQUESTED,
        1,
    )
    assert result.estimated_wait_seconds is not None and result.estimated_wait_seconds > 0
    assert result.alternatives == ("small",)


def test_queued_model_the_hub_was_never_asked_about_has_no_estimate() -> None:
    d = desired(model("big", policy=Policy.ON_DEMAND))
    problem = RemoteProblem(Reason.HUB_UNREACHABLE, "offline: the hub was not asked")
    o = replace(world(()), remote={"big": problem}, requested=frozenset({"big"}))
    result = ask("big", d, o)
    assert (result.phase, result.queue_position, result.estimated_wait_seconds) == (
        Phase.QUEUED,
        None,
        None,
    )
    assert result.action_required == "run `reconcile --apply`"


def test_a_download_that_cannot_fit_asks_to_free_the_difference() -> None:
    d = desired(model("a"))
    o = world(d.models, sizes={"a": 12 * 10**9}, disk=Disk(total=10**12, free=2 * 10**9))
    result = ask("a", d, o)
    assert result.action_required == (
        "free 10.0 GB on the cache's filesystem, then run `reconcile --apply`"
    )


@pytest.mark.parametrize(
    ("reason", "action"),
    [
        (Reason.ACCESS_DENIED, availability.LOGIN),
        (
            Reason.REPO_NOT_FOUND,
            "correct the model's repo, revision or include patterns in the manifest",
        ),
        (Reason.CHECKSUM_MISMATCH, "run `reconcile --apply` to retry"),
    ],
)
def test_failures_say_what_to_do(reason: Reason, action: str) -> None:
    d = desired(model("a"), model("b", tags=("t",)), model("c", tags=("t",)))
    o = world(d.models, present=("c",))
    if reason is Reason.CHECKSUM_MISMATCH:
        result = ask("b", d, o, failures={"b": Failure(reason=reason, message="bad bytes")})
    else:
        o = replace(o, remote={**o.remote, "b": RemoteProblem(reason, "hub says no")})
        result = ask("b", d, o)
    assert (result.success, result.phase, result.reason) == (False, Phase.FAILED, reason)
    assert result.action_required == action
    assert result.error in ("bad bytes", "hub says no")
    assert result.alternatives == ("c",)


def test_suspended_model_is_paused_with_an_error() -> None:
    d = desired(model("a", suspend=True))
    result = ask("a", d, world(d.models))
    assert (result.phase, result.error) == (Phase.PAUSED, "a is suspended in the manifest")
    assert result.action_required == "set `suspend: false` for it in the manifest"


def test_download_under_way_needs_no_action() -> None:
    d = desired(model("a"))
    result = ask("a", d, world(d.models), in_progress={"a": Phase.DOWNLOADING})
    assert (result.phase, result.action_required, result.queue_position) == (
        Phase.DOWNLOADING,
        None,
        1,
    )


def test_unknown_model_lists_the_declared_names() -> None:
    d = desired(model("a"), model("b"))
    result = ask("zz", d, world(d.models))
    assert (result.success, result.phase) == (False, Phase.UNKNOWN)
    assert result.error == "unknown model 'zz'; declared models: a, b"
    assert result.declared_models == ("a", "b")


def test_same_state_same_answer() -> None:
    d = desired(model("a"), model("b", policy=Policy.ON_DEMAND))
    o = world(d.models, requested=frozenset({"b"}), throughput=3 * MB)
    assert ask("b", d, o) == ask("b", d, replace(o))


def test_status_shows_requested_models_queued_with_their_place_and_usage() -> None:
    d = desired(
        model("first", priority=Priority.HIGH),
        model("big", policy=Policy.ON_DEMAND),
        model("idle", policy=Policy.ON_DEMAND),
    )
    used = UsageStats(
        uses=45,
        uses_per_day=1.5,
        last_used=NOW,
        average_generation_seconds=30.0,
        performance_score=0.9,
    )
    o = world(d.models, requested=frozenset({"big"}), usage={"big": used})
    report = snapshot(d, o, NOW).report
    big, idle = report.model("big"), report.model("idle")
    assert big is not None and idle is not None
    assert (big.phase, big.reason, big.queue_position) == (Phase.QUEUED, Reason.REQUESTED, 1)
    assert big.message.startswith("requested; position 1 in the queue")
    assert (big.priority, big.effective_priority, big.usage_frequency) == ("auto", "high", 1.5)
    assert (big.last_used, big.average_generation_seconds, big.performance_score) == (
        NOW,
        30.0,
        0.9,
    )
    assert (idle.phase, idle.reason, idle.queue_position) == (
        Phase.MISSING,
        Reason.NOT_REQUESTED,
        None,
    )
    first = report.model("first")
    assert first is not None and first.queue_position == 2  # usage put big (high) first

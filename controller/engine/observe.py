"""Observation: read the cache, the state store, the disk and the hub; change nothing.

Problems are recorded in the :class:`~controller.domain.Observation` instead of raised, so
one unreachable hub or one odd directory never hides what is known about everything else.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from controller.cache import layout
from controller.domain import (
    CachedRepo,
    DeletionRecord,
    DesiredModel,
    DesiredState,
    Disk,
    Eviction,
    Lease,
    Observation,
    OwnedFile,
    Reason,
    RemoteProblem,
    RemoteRevision,
    UsageStats,
)
from controller.domain.usage import derive, recent_start, window_start
from controller.hub import revisions
from controller.hub.watchdog import SpeedFloor
from controller.store import StateStore, leases
from controller.system import collector


def observe(
    desired: DesiredState,
    *,
    now: datetime,
    offline: bool = False,
    store: StateStore | None = None,
    remote: Mapping[str, RemoteRevision | RemoteProblem] | None = None,
    pinned: Mapping[str, RemoteRevision] | None = None,
) -> Observation:
    """``remote`` reuses an earlier hub answer (after an apply, the hub is not asked again).
    ``pinned`` describes models from their lock entries: the hub is not asked about them.

    ``store`` is the open state store when the caller is applying; planning opens it
    read-only so that a plan creates nothing on disk.  A pass that applies remembers what it
    learned of where each revision points, from the hub or from the lock, so that the next
    offline pass and every reader of the store (``request``, the status, the API) start from
    the same answer; a plan remembers nothing.
    """
    cache_dir = Path(desired.cache_dir)
    problems: list[str] = []
    pinned = pinned or {}
    wanted = [] if remote is not None else _to_ask(desired, skip=set(pinned))
    # The hub is asked while the cache is read: each waits on something else (the hub's
    # answers, the disk), and one after the other cost their sum.
    owned = store is not None
    with collector.paused(), _HubQuestions(desired, wanted, offline) as questions:
        cache = _read_cache(cache_dir, desired.models, problems)
        store = store or StateStore.open_readonly(Path(desired.state_dir))
        try:
            verifications = store.verifications() if store else {}
            if remote is None:
                asked = _settle(wanted, questions.answers(), store, now, remember=owned)
                if owned and store is not None:
                    _remember_pinned(store, pinned, now)
                remote = {**asked, **pinned}
            usage_stats = _usage(store, now, desired.usage_window_days) if store else {}
            requested = frozenset(store.requests()) if store else frozenset()
            paused = frozenset(store.paused()) if store else frozenset()
            throughput = store.throughput() if store else None
            retention = _retention_state(store, now, writable=owned) if store else _NO_RETENTION
            health = store.health_checks() if store else {}
        finally:
            if store is not None and not owned:
                store.close()
    return Observation(
        cache=cache,
        remote=dict(remote),
        verifications=verifications,
        disk=_disk(cache_dir, problems),
        problems=tuple(problems),
        usage=usage_stats,
        requested=requested & {m.name for m in desired.models},
        paused=paused & {m.name for m in desired.models},
        throughput=throughput,
        owned=retention.owned,
        leases=retention.leases,
        pending_deletions=retention.pending,
        evicted=retention.evicted,
        health={name: h for name, h in health.items() if name in {m.name for m in desired.models}},
    )


def observe_models(
    desired: DesiredState,
    *,
    now: datetime,
    store: StateStore,
    remote: Mapping[str, RemoteRevision | RemoteProblem],
) -> Observation:
    """Just what assessing ``desired.models`` reads: their repos on disk, their records in
    ``store``, and the hub's earlier answers ``remote``.

    A model whose work ends mid-pass is assessed again from this, so re-reading it costs
    in proportion to that model, not to the whole cache.  Other repos, usage, ownership,
    unfinished deletions and the disk are left empty: the result is for assessing those
    models, not for planning (retention needs the whole cache).
    """
    names = {m.name for m in desired.models}
    repos = sorted({m.repo for m in desired.models})
    problems: list[str] = []
    return Observation(
        cache=_read_repos(Path(desired.cache_dir), repos, problems),
        remote={name: answer for name, answer in remote.items() if name in names},
        verifications={
            (repo, blob): v for repo in repos for blob, v in store.verifications_for(repo).items()
        },
        disk=None,
        problems=tuple(problems),
        requested=frozenset(store.requests()) & names,
        paused=frozenset(store.paused()) & names,
        leases=leases.live_by_model([lease for n in names for lease in store.leases(n)], now),
        evicted={name: e for name, e in store.evictions().items() if name in names},
        health={name: h for name, h in store.health_checks().items() if name in names},
    )


@dataclass(frozen=True)
class _RetentionState:
    owned: tuple[OwnedFile, ...] = ()
    leases: Mapping[str, tuple[Lease, ...]] = field(default_factory=dict)
    pending: tuple[DeletionRecord, ...] = ()
    evicted: Mapping[str, Eviction] = field(default_factory=dict)


_NO_RETENTION = _RetentionState()


def _retention_state(store: StateStore, now: datetime, *, writable: bool) -> _RetentionState:
    """What retention needs from the state store: ownership, leases, unfinished deletions.

    Only live leases are kept: a lease whose holder died is as good as released.  An apply
    (``writable``) also drops the void ones from the store; a plan changes nothing.
    """
    if writable:
        store.prune_leases(lambda lease: leases.is_live(lease, now))
    return _RetentionState(
        owned=tuple(store.owned()),
        leases=leases.live_by_model(store.leases(), now),
        pending=tuple(store.pending_deletions()),
        evicted=store.evictions(),
    )


def _usage(store: StateStore, now: datetime, window_days: int) -> dict[str, UsageStats]:
    aggregates = store.usage_aggregates(
        since=window_start(now, window_days), recent_since=recent_start(now, window_days)
    )
    return derive(aggregates.values(), window_days=window_days)


def _read_cache(
    cache_dir: Path, models: tuple[DesiredModel, ...], problems: list[str]
) -> dict[str, CachedRepo]:
    """The declared repos, and every other model repo in the cache: retention must know
    what it once downloaded and what belongs to other tools, to tell them apart."""
    try:
        found = layout.list_repos(cache_dir)
    except OSError as e:
        problems.append(f"cache: cannot list {cache_dir}: {e}")
        found = []
    return _read_repos(cache_dir, sorted({m.repo for m in models} | set(found)), problems)


def _read_repos(
    cache_dir: Path, repos: Collection[str], problems: list[str]
) -> dict[str, CachedRepo]:
    cache: dict[str, CachedRepo] = {}
    for repo in repos:
        try:
            cache[repo] = layout.read_repo(cache_dir, repo)
        except (OSError, layout.UnsafePathError) as e:
            problems.append(f"cache: cannot read {repo}: {e}")
    return cache


def _to_ask(desired: DesiredState, *, skip: Collection[str]) -> list[DesiredModel]:
    return [m for m in desired.models if not m.suspend and m.name not in skip]


# After this many models in a row found the hub unreachable (each after its own quick
# retries), the rest of the pass does not ask: every question would wait out the same retries
# (about a second) for the same answer -- two minutes of a 1,000-model pass that can only plan
# from what the hub said last.  Any answer from the hub starts the count again.
UNREACHABLE_IN_A_ROW = 3


class UnreachableRun:
    """The models in a row, in the order their answers came, that found the hub unreachable;
    ``down`` is the last of their problems once there are :data:`UNREACHABLE_IN_A_ROW`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # answers come from several threads
        self._count = 0
        self.down: RemoteProblem | None = None

    def heard(self, answer: RemoteRevision | RemoteProblem) -> None:
        with self._lock:
            if isinstance(answer, RemoteProblem) and answer.reason is Reason.HUB_UNREACHABLE:
                self._count += 1
                if self._count >= UNREACHABLE_IN_A_ROW:
                    self.down = answer
            else:
                self._count = 0


class _HubQuestions:
    """What the hub says about each of ``wanted``, asked on a few threads from the moment
    the block is entered; leaving it early cancels the questions not yet sent."""

    def __init__(self, desired: DesiredState, wanted: list[DesiredModel], offline: bool) -> None:
        self._desired = desired
        self._wanted = wanted
        self._offline = offline
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[RemoteRevision | RemoteProblem]] = []
        self._unreachable = UnreachableRun()

    def __enter__(self) -> _HubQuestions:
        if self._wanted and not self._offline:
            desired = self._desired
            floor = SpeedFloor(desired.min_speed, desired.min_speed_window)
            self._pool = ThreadPoolExecutor(max_workers=min(8, len(self._wanted)))
            self._pending = [
                self._pool.submit(self._ask, m.repo, m.revision, desired.endpoint, floor)
                for m in self._wanted
            ]
        return self

    def _ask(
        self, repo: str, revision: str, endpoint: str, floor: SpeedFloor
    ) -> RemoteRevision | RemoteProblem:
        """The hub's answer, unless it was unreachable for the models asked just before:
        then this one is not asked (see :data:`UNREACHABLE_IN_A_ROW`)."""
        down = self._unreachable.down
        if down is not None:
            return RemoteProblem(
                Reason.HUB_UNREACHABLE,
                f"not asked: the hub was unreachable for {UNREACHABLE_IN_A_ROW} models in a "
                f"row in this pass (the last: {down.message})",
            )
        answer = revisions.resolve(repo, revision, endpoint, floor)
        self._unreachable.heard(answer)
        return answer

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def answers(self) -> list[RemoteRevision | RemoteProblem]:
        """One answer per wanted model, in order (waiting for those still under way)."""
        if self._offline:
            # Said where a model has no answer from the hub to fall back on: the user needs
            # to know what would get one.
            unasked = RemoteProblem(
                Reason.HUB_UNREACHABLE,
                f"offline: the hub ({self._desired.endpoint}) was not asked, and no earlier "
                "answer is remembered; run once without --offline to resolve it",
            )
            return [unasked for _ in self._wanted]
        return [future.result() for future in self._pending]


def _settle(
    wanted: list[DesiredModel],
    answers: list[RemoteRevision | RemoteProblem],
    store: StateStore | None,
    now: datetime,
    *,
    remember: bool,
) -> dict[str, RemoteRevision | RemoteProblem]:
    """Each model's answer: remembered when it is news and ``remember``; what the hub said
    last when it could not be reached."""
    if remember and store is not None:
        store.remember_remotes([a for a in answers if isinstance(a, RemoteRevision)], now)
    remote: dict[str, RemoteRevision | RemoteProblem] = {}
    for model, answer in zip(wanted, answers, strict=True):
        if isinstance(answer, RemoteRevision):
            remote[model.name] = answer
        elif answer.reason is Reason.HUB_UNREACHABLE and store is not None:
            # An unreachable hub is not a changed hub: plan against what it said last.
            remote[model.name] = store.recall_remote(model.repo, model.revision) or answer
        else:
            remote[model.name] = answer
    return remote


def _remember_pinned(
    store: StateStore, pinned: Mapping[str, RemoteRevision], now: datetime
) -> None:
    """Remember the lock's answers as learned now: the pass follows the lock, so the lock is
    this machine's newest word on where those revisions point.

    A lock entry lists only the files its model selects, and models may share a
    ``repo@revision`` with other patterns: the answer remembered for it is the union of the
    entries that agree on the commit.  Entries that disagree (locked at different times)
    leave the remembered answer as it was: neither is the whole truth.
    """
    by_key: dict[tuple[str, str], list[RemoteRevision]] = {}
    for answer in pinned.values():
        by_key.setdefault((answer.repo, answer.revision), []).append(answer)
    for (repo, revision), answers in by_key.items():
        if len({a.commit for a in answers}) != 1:
            continue
        files = {f.path: f for a in answers for f in a.files}
        store.remember_remote(
            RemoteRevision(
                repo=repo,
                revision=revision,
                commit=answers[0].commit,
                files=tuple(files[path] for path in sorted(files)),
            ),
            now,
        )


def _disk(cache_dir: Path, problems: list[str]) -> Disk | None:
    # The cache may not exist yet; its filesystem is that of the nearest existing parent.
    probe = cache_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as e:
        problems.append(f"disk: cannot read free space of {probe}: {e}")
        return None
    return Disk(total=usage.total, free=usage.free)

"""How each declared model stands against what was observed: a pure classification.

The reconcilers (what to do) and the status (what to report) both start from the same
:class:`Assessment`, so a plan and a status can never disagree about which files are
missing, corrupt or unverified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from controller.domain import (
    CachedFile,
    CachedRepo,
    DesiredModel,
    Eviction,
    FileWork,
    HealthCheck,
    Observation,
    Policy,
    Reason,
    RemoteProblem,
    RemoteRevision,
    UpdatePolicy,
    Verification,
    is_commit,
)
from controller.domain.selection import selects


@dataclass(frozen=True)
class Damage:
    file: FileWork
    reason: Reason  # SIZE_MISMATCH or CHECKSUM_MISMATCH
    detail: str


@dataclass(frozen=True)
class Assessment:
    model: DesiredModel
    commit: str | None  # the commit the model should be at; None when unknown
    files: tuple[FileWork, ...]  # selected files of that commit
    good: tuple[FileWork, ...] = ()
    missing: tuple[FileWork, ...] = ()
    damaged: tuple[Damage, ...] = ()
    unverified: tuple[FileWork, ...] = ()
    problem: RemoteProblem | None = None
    served_commit: str | None = None  # what refs/<revision> points at today
    upstream_commit: str | None = None  # the hub's commit when it differs and updates wait
    ref_behind: bool = False  # every file is fine but the ref still needs pointing
    hub_stale: bool = False
    reusable: frozenset[str] = frozenset()  # etags whose blob another snapshot already holds
    partial: Mapping[str, int] = field(default_factory=dict)  # etag -> bytes of a partial file
    requested: bool = False  # someone asked for the model and the request is not yet fulfilled
    paused: bool = False  # paused through the API: ``model.suspend`` is set as if declared
    in_use: bool = False  # a live lease holds it: nothing deletes it or switches its ref
    evicted: Eviction | None = None  # retention evicted it, and nobody requested it since
    health: HealthCheck | None = None  # the latest health check, when one ran

    @property
    def probe_failed(self) -> bool:
        """The latest probe of the commit the model is at failed (files were fine)."""
        h = self.health
        return h is not None and h.commit == self.commit and h.probe_ok is False

    def transfer_bytes(self, files: tuple[FileWork, ...]) -> int:
        """Bytes that must travel to fetch ``files``: a blob already cached is only linked,
        and a partial download is resumed where it stopped."""
        return sum(
            max(0, f.size - self.partial.get(f.etag, 0))
            for f in files
            if f.etag not in self.reusable
        )

    @property
    def expected_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def present_bytes(self) -> int:
        return sum(f.size for f in (*self.good, *self.unverified))

    @property
    def verified_bytes(self) -> int:
        return sum(f.size for f in self.good)

    @property
    def complete(self) -> bool:
        """Every selected file is present and verified (the AVAILABLE condition)."""
        return self.commit is not None and bool(self.files) and len(self.good) == len(self.files)

    @property
    def nothing_selected(self) -> bool:
        """The hub named a commit, and the model's patterns select none of its files."""
        return self.commit is not None and not self.files

    @property
    def absent(self) -> bool:
        """Nothing of the model is on disk."""
        return not (self.good or self.unverified or self.damaged)

    @property
    def on_demand_unrequested(self) -> bool:
        return self.model.policy is Policy.ON_DEMAND and self.absent and not self.requested

    @property
    def retired(self) -> bool:
        """Evicted and not requested since: whatever is left of it (files another model
        shares, or an eviction killed halfway) is not fetched, verified or repaired again."""
        return (
            self.evicted is not None
            and self.model.policy is Policy.ON_DEMAND
            and not self.requested
        )

    @property
    def awaiting_request(self) -> bool:
        """An on-demand model that was requested and is not yet all on disk (QUEUED)."""
        return (
            self.model.policy is Policy.ON_DEMAND
            and self.requested
            and (self.commit is None or bool(self.missing))
        )


def assess(model: DesiredModel, observed: Observation) -> Assessment:
    paused = model.name in observed.paused and not model.suspend
    # A pause acts exactly like the manifest's suspend, so every reconciler skips the model.
    found = _assess(replace(model, suspend=True) if paused else model, observed)
    if paused:
        found = replace(found, paused=True)
    if model.name in observed.leases:
        found = replace(found, in_use=True)
    if model.name in observed.evicted:
        found = replace(found, evicted=observed.evicted[model.name])
    if model.name in observed.health:
        found = replace(found, health=observed.health[model.name])
    if model.name in observed.requested:
        return replace(found, requested=True)
    return found


def _assess(model: DesiredModel, observed: Observation) -> Assessment:
    cached = observed.repo(model.repo)
    remote = observed.remote.get(model.name)
    served = _served_commit(model, cached)
    if isinstance(remote, RemoteRevision) and _outdated(model, remote, cached, served):
        # The cache moved after the hub's remembered answer was learned (a lock applied, or
        # another tool): that answer is older news than the cache, and following it would
        # move the model back.  The snapshot served describes it, as when the hub is silent.
        assert served is not None
        files = _files_from_snapshot(model, cached, served)
        return _classify(model, served, files, cached, observed, served=served, stale=True)
    if isinstance(remote, RemoteRevision):
        if _holds_back(model, remote, cached, served):
            assert served is not None
            files = _files_from_snapshot(model, cached, served)
            return _classify(
                model,
                served,
                files,
                cached,
                observed,
                served=served,
                upstream=remote.commit,
                stale=remote.stale,
            )
        files = tuple(
            FileWork(f.path, f.size, f.etag)
            for f in sorted(remote.files, key=lambda f: f.path)
            if selects(f.path, model.include, model.exclude)
        )
        return _classify(
            model, remote.commit, files, cached, observed, served=served, stale=remote.stale
        )
    problem = (
        remote
        if isinstance(remote, RemoteProblem)
        else RemoteProblem(Reason.HUB_UNREACHABLE, "the hub was not asked about this model")
    )
    if served is not None:
        # Without the hub, the snapshot the cache already serves is the best description of
        # the model: its blob names are the expected digests, so it can still be verified.
        files = _files_from_snapshot(model, cached, served)
        return _classify(model, served, files, cached, observed, served=served, problem=problem)
    return Assessment(model=model, commit=None, files=(), problem=problem)


def _served_commit(model: DesiredModel, cached: CachedRepo) -> str | None:
    if is_commit(model.revision):
        return model.revision if model.revision in cached.snapshots else None
    commit = cached.refs.get(model.revision)
    return commit if commit and commit in cached.snapshots else None


def _outdated(
    model: DesiredModel, remote: RemoteRevision, cached: CachedRepo, served: str | None
) -> bool:
    """A remembered answer that points elsewhere than the cache's ref, learned before the
    ref was last written."""
    moved_at = cached.ref_times.get(model.revision)
    return (
        remote.stale
        and remote.learned_at is not None
        and moved_at is not None
        and served is not None
        and served != remote.commit
        and moved_at > remote.learned_at
        and bool(cached.files_at(served))
    )


def _holds_back(
    model: DesiredModel, remote: RemoteRevision, cached: CachedRepo, served: str | None
) -> bool:
    """A moved branch waits for a human unless the model's updates are automatic, or a
    lock (which a human reviewed) names the new commit."""
    return (
        not remote.locked
        and model.updates is not UpdatePolicy.AUTO
        and not is_commit(model.revision)
        and served is not None
        and served != remote.commit
        and bool(cached.files_at(served))
    )


def _files_from_snapshot(
    model: DesiredModel, cached: CachedRepo, commit: str
) -> tuple[FileWork, ...]:
    return tuple(
        FileWork(path, f.size, f.blob)
        for path, f in sorted(cached.files_at(commit).items())
        if f.blob and f.size >= 0 and selects(path, model.include, model.exclude)
    )


def _classify(
    model: DesiredModel,
    commit: str,
    files: tuple[FileWork, ...],
    cached: CachedRepo,
    observed: Observation,
    *,
    served: str | None,
    upstream: str | None = None,
    stale: bool = False,
    problem: RemoteProblem | None = None,
) -> Assessment:
    snapshot = cached.files_at(commit)
    good: list[FileWork] = []
    missing: list[FileWork] = []
    damaged: list[Damage] = []
    unverified: list[FileWork] = []
    for f in files:
        entry = snapshot.get(f.path)
        verdict = _file_verdict(f, entry, observed.verifications.get((model.repo, f.etag)))
        if verdict is None:
            good.append(f)
        elif isinstance(verdict, Damage):
            damaged.append(verdict)
        elif verdict is Reason.MISSING:
            missing.append(f)
        else:
            unverified.append(f)
    ref_behind = (
        bool(files)
        and not is_commit(model.revision)
        and served != commit
        and not missing
        and not damaged
    )
    return Assessment(
        model=model,
        commit=commit,
        files=files,
        good=tuple(good),
        missing=tuple(missing),
        damaged=tuple(damaged),
        unverified=tuple(unverified),
        problem=problem,
        served_commit=served,
        upstream_commit=upstream,
        ref_behind=ref_behind,
        hub_stale=stale,
        reusable=_reusable(cached, missing),
        partial={p.blob: p.size for p in cached.partials if p.resumable},
    )


def _reusable(cached: CachedRepo, missing: list[FileWork]) -> frozenset[str]:
    if not missing:
        return frozenset()  # the usual case: nothing to look for in the other snapshots
    wanted = {f.etag: f.size for f in missing}
    return frozenset(
        entry.blob
        for files in cached.snapshots.values()
        for entry in files.values()
        if wanted.get(entry.blob) == entry.size
    )


def _file_verdict(
    f: FileWork, entry: CachedFile | None, record: Verification | None
) -> Damage | Reason | None:
    """None when the file is good; otherwise MISSING, UNVERIFIED or a Damage."""
    if entry is None or entry.size < 0:
        return Reason.MISSING
    if entry.blob and entry.blob != f.etag:
        return Damage(f, Reason.CHECKSUM_MISMATCH, f"snapshot points at blob {entry.blob[:12]}")
    if entry.size != f.size:
        return Damage(f, Reason.SIZE_MISMATCH, f"{entry.size} bytes on disk, {f.size} expected")
    if record is None or not record.still_describes(entry):
        return Reason.UNVERIFIED
    if not record.ok:
        return Damage(f, Reason.CHECKSUM_MISMATCH, f"content hashes to {record.digest[:12]}")
    return None

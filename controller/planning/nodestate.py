"""What another machine has, rebuilt from the status file it wrote (``--plan --state FILE``).

CI has neither that machine's disk nor a hub, but it has the status the machine reported and
the lock: together they say which commit each model is at and which of its files are missing,
damaged, unverified or good.  :func:`observation_from_status` turns them into the same
:class:`~controller.domain.Observation` that reading a real cache gives, so the ordinary
(pure) planner shows what that machine would do.  Pure: the caller reads the files.

A status lists only the files that are *not* good, so "every other file is good" holds only
when the machine selected the same files as the manifest being planned.  A status records no
patterns, but it does record how many bytes the model's selection adds up to: when that
differs from the lock's total, the machine runs another version of the manifest, and the
files the status does not name are counted as missing -- the plan then overstates the work
(never understates it), and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.domain import (
    CachedFile,
    CachedRepo,
    DesiredState,
    Observation,
    Policy,
    RemoteProblem,
    RemoteRevision,
    UsageStats,
    Verification,
    is_commit,
)
from controller.domain.selection import selects

# Stands in for the digest of a file the machine found damaged: its status names the file but
# not what the bytes hashed to, and the plan's repair message shows this instead.
UNREPORTED_DIGEST = "unreported"


@dataclass(frozen=True)
class ReportedModel:
    """One model's entry of a status file, reduced to what planning needs."""

    name: str
    commit: str | None  # the commit the lists below refer to
    missing: tuple[str, ...] = ()
    corrupt: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    expected_size: int = 0  # bytes of the machine's selection of the model
    requested: bool = False  # an on-demand model the machine was asked for
    uses_per_day: float = 0.0
    last_used: datetime | None = None


@dataclass(frozen=True)
class ReportedState:
    models: Mapping[str, ReportedModel]  # by model name
    checked_at: datetime  # when the machine wrote the status


def observation_from_status(
    desired: DesiredState,
    reported: ReportedState,
    remote: Mapping[str, RemoteRevision | RemoteProblem],
) -> tuple[Observation, tuple[str, ...]]:
    """The machine's cache as its status describes it, and warnings about what is assumed.

    ``remote`` comes from the lock: the file list of the model's commit.  The observation has
    no disk (the machine's free space is not in its status); check the fit with a budget.
    """
    cache: dict[str, CachedRepo] = {}
    verifications: dict[tuple[str, str], Verification] = {}
    warnings: list[str] = []
    for model in desired.models:
        found = reported.models.get(model.name)
        described = remote.get(model.name)
        if found is None or found.commit is None or not isinstance(described, RemoteRevision):
            continue  # nothing of the model is on the machine, or nothing is known about it
        if found.commit != described.commit:
            # The machine serves another commit; the lock lists only the locked commit's files,
            # so none of them can be assumed present (the machine may share some blobs).
            warnings.append(
                f"{model.name}: the machine is at {found.commit[:12]}, the lock at "
                f"{described.commit[:12]}; every file is counted as to fetch"
            )
            cache[model.repo] = _merge(
                cache.get(model.repo), model.repo, model.revision, found.commit, {}
            )
            continue
        selected = [f for f in described.files if selects(f.path, model.include, model.exclude)]
        same_selection = sum(f.size for f in selected) == found.expected_size
        if not same_selection:
            warnings.append(
                f"{model.name}: the machine's status describes another selection of files "
                "(its manifest differs); files it does not list are counted as missing"
            )
        missing, corrupt, unverified = set(found.missing), set(found.corrupt), set(found.unverified)
        files: dict[str, CachedFile] = {}
        for f in selected:
            if f.path in missing or not (same_selection or f.path in corrupt | unverified):
                continue
            files[f.path] = CachedFile(path=f.path, blob=f.etag, size=f.size)
            if f.path in unverified:
                continue  # present, never checked: no verification record
            verifications[(model.repo, f.etag)] = Verification(
                blob=f.etag,
                size=f.size,
                mtime_ns=0,
                inode=0,
                digest=f.etag if f.path not in corrupt else UNREPORTED_DIGEST,
                ok=f.path not in corrupt,
                checked_at=reported.checked_at,
            )
        # A machine points its ref at a commit only once every file of it is there.
        ref = None if missing or not same_selection else found.commit
        cache[model.repo] = _merge(
            cache.get(model.repo), model.repo, model.revision, ref, {found.commit: files}
        )
    observation = Observation(
        cache=cache,
        remote=dict(remote),
        verifications=verifications,
        disk=None,
        usage=_usage(desired, reported),
        requested=frozenset(
            m.name
            for m in desired.models
            if m.policy is Policy.ON_DEMAND
            and (found := reported.models.get(m.name)) is not None
            and found.requested
        ),
    )
    return observation, tuple(warnings)


def _merge(
    repo: CachedRepo | None,
    name: str,
    revision: str,
    ref: str | None,
    snapshots: Mapping[str, Mapping[str, CachedFile]],
) -> CachedRepo:
    """Two models may share a repo (at different revisions): one cache entry holds both."""
    refs = dict(repo.refs) if repo else {}
    if ref is not None and not is_commit(revision):
        refs[revision] = ref
    merged = dict(repo.snapshots) if repo else {}
    for commit, files in snapshots.items():
        merged[commit] = {**merged.get(commit, {}), **files}
    if ref is not None and ref not in merged:
        merged[ref] = {}  # a served commit whose files the lock does not list
    return CachedRepo(repo=name, refs=refs, snapshots=merged)


def _usage(desired: DesiredState, reported: ReportedState) -> dict[str, UsageStats]:
    """Usage as the machine counted it, so that auto priorities order the plan as there."""
    usage = {}
    for m in desired.models:
        found = reported.models.get(m.name)
        if found is None or found.uses_per_day <= 0:
            continue
        usage[m.name] = UsageStats(
            uses=round(found.uses_per_day * desired.usage_window_days),
            uses_per_day=found.uses_per_day,
            last_used=found.last_used,
            average_generation_seconds=None,
            performance_score=None,
        )
    return usage

"""Adoption: taking ownership of a declared model's files that another tool put in the cache.

modelsync deletes only what it owns.  What it downloads it owns from the start (the state
store records it with the download); a model that was already in the cache -- fetched by
``snapshot_download``, by an application, by an older setup -- is verified and used, but
stays the other tool's until it is adopted: ``adopt: true`` on the model in the manifest
(recorded by each apply) or ``reconcile adopt NAME`` (recorded at once).  From then on
retention may delete it like anything modelsync downloaded, e.g. once it leaves the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from controller.domain import Observation
from controller.domain.assessment import Assessment
from controller.domain.selection import selects
from controller.store import StateStore


@dataclass(frozen=True)
class Adopted:
    model: str
    repo: str
    commit: str
    paths: tuple[str, ...]  # the model's entries in the snapshot (owned already or not)
    bytes: int
    new: int = 0  # how many of them were not owned before


def adoptable(a: Assessment, observed: Observation) -> list[Adopted]:
    """The model's selected entries present in the cache: at the commit it should be at and
    at the one its ref serves."""
    if a.commit is None or a.model.suspend:
        return []
    cached = observed.repo(a.model.repo)
    found = []
    for commit in sorted({a.commit, *([a.served_commit] if a.served_commit else [])}):
        entries = {
            path: f
            for path, f in cached.files_at(commit).items()
            if f.size >= 0 and selects(path, a.model.include, a.model.exclude)
        }
        if entries:
            blobs = {f.blob or path: f.size for path, f in entries.items()}
            found.append(
                Adopted(
                    a.model.name, a.model.repo, commit, tuple(sorted(entries)), sum(blobs.values())
                )
            )
    return found


def adopt(
    store: StateStore, assessments: Iterable[Assessment], observed: Observation, now: datetime
) -> list[Adopted]:
    """Record ownership of each model's present entries; what was adopted, per revision."""
    done = []
    for a in assessments:
        for found in adoptable(a, observed):
            new = store.adopt(found.model, found.repo, found.commit, found.paths, now)
            done.append(
                Adopted(found.model, found.repo, found.commit, found.paths, found.bytes, new)
            )
    return done

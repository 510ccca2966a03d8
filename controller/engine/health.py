"""``reconcile verify``: re-check what is on disk, without downloading or moving anything.

Files whose size, mtime and inode still match their last verification are trusted without
being read, unless ``full`` asks for every byte to be hashed again.  Damage found here is
recorded (the model becomes CORRUPTED in the status); the next ``--apply`` repairs it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.cache import layout
from controller.cache.inspection import inspect
from controller.domain import DesiredState, FileWork, HealthCheck, Verification
from controller.domain.assessment import Assessment
from controller.engine.observe import observe
from controller.engine.probe import run_probe
from controller.planning.planner import assess_all
from controller.store import StateStore
from controller.system.cancel import Cancelled


@dataclass(frozen=True)
class Check:
    model: str
    path: str
    ok: bool
    hashed: bool  # False when an unchanged verification was trusted
    detail: str = ""
    probe: bool = False  # the model's probe, not a file (``path`` is then "")


@dataclass(frozen=True)
class _Job:
    assessment: Assessment
    file: FileWork

    @property
    def repo(self) -> str:
        return self.assessment.model.repo


def verify_declared(
    desired: DesiredState,
    store: StateStore,
    *,
    clock: Callable[[], datetime],
    models: Collection[str] = (),
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[Check]:
    """Check the declared models (only ``models``, when given) against the cache.

    No hub is needed: the cache's own snapshot and the hub's last answer say what each
    file should hash to.
    """
    observed = observe(desired, now=clock(), offline=True, store=store)
    chosen = [a for a in assess_all(desired, observed) if not models or a.model.name in models]
    checks = verify(
        chosen,
        cache_dir=Path(desired.cache_dir),
        store=store,
        clock=clock,
        full=full,
        progress=progress,
        stop=stop,
    )
    return checks + _health(chosen, checks, desired.cache_dir, store, clock)


def _health(
    chosen: list[Assessment],
    checks: list[Check],
    cache_dir: str,
    store: StateStore,
    clock: Callable[[], datetime],
) -> list[Check]:
    """Record each model's health check, running its probe once its files all verified.

    Returns a check for each failed probe, so callers report it with the damaged files.
    """
    damaged = {c.model for c in checks if not c.ok}
    failed: list[Check] = []
    for a in chosen:
        if a.commit is None or a.model.suspend:
            continue
        files_ok = bool(a.files) and not a.missing and a.model.name not in damaged
        outcome = None
        if files_ok and a.model.probe is not None:
            snapshot = layout.snapshot_dir(Path(cache_dir), a.model.repo, a.commit)
            outcome = run_probe(a.model, a.model.probe, commit=a.commit, snapshot=snapshot,
                                cache_dir=cache_dir)
            if not outcome.ok:
                failed.append(Check(a.model.name, "", False, False, outcome.message, probe=True))
        store.record_health(HealthCheck(
            model=a.model.name, commit=a.commit, checked_at=clock(), files_ok=files_ok,
            probe_ok=None if outcome is None else outcome.ok,
            probe_exit=None if outcome is None else outcome.exit_code,
            probe_message="" if outcome is None else outcome.message,
        ))
    return failed


def verify(
    assessments: Iterable[Assessment],
    *,
    cache_dir: Path,
    store: StateStore,
    clock: Callable[[], datetime],
    full: bool = False,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[Check]:
    """``stop`` is asked before each file and between chunks of each hash; once it says
    so, :class:`Cancelled` is raised and a file whose hash was cut short stays unverified."""
    jobs = [
        _Job(a, f)
        for a in assessments
        if a.commit is not None
        for f in a.files
        if f not in a.missing
    ]
    total = sum(j.file.size for j in jobs)
    done = 0
    checks: list[Check] = []
    # One query per repo for the records that let an unchanged file go unread.
    known = {} if full else {r: store.verifications_for(r) for r in {j.repo for j in jobs}}
    # Set when this thread is interrupted (Ctrl-C): leaving the pool waits for its workers,
    # which must then stop within a chunk rather than hash every queued file first.
    abandoned = threading.Event()

    def stopped() -> bool:
        return abandoned.is_set() or (stop is not None and stop())

    def unless_stopped(job: _Job) -> tuple[Check, int]:
        if stopped():
            raise Cancelled("verification stopped")
        return _check(job, cache_dir, store, clock, full, stopped, known.get(job.repo))

    # hashlib releases the GIL on large buffers, so one thread per core hashes in parallel.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = [pool.submit(unless_stopped, j) for j in jobs]
        try:
            for future in as_completed(futures):
                check, size = future.result()
                checks.append(check)
                done += size
                if progress:
                    progress(done, total)
        except BaseException:
            abandoned.set()
            raise
    return sorted(checks, key=lambda c: (c.model, c.path))


def _check(
    job: _Job,
    cache_dir: Path,
    store: StateStore,
    clock: Callable[[], datetime],
    full: bool,
    stop: Callable[[], bool],
    known: Mapping[str, Verification] | None,
) -> tuple[Check, int]:
    a, f = job.assessment, job.file
    assert a.commit is not None
    snapshot = layout.snapshot_path(cache_dir, a.model.repo, a.commit, f.path)
    found = inspect(
        store, a.model.repo, f, snapshot, clock, trust_unchanged=not full, stop=stop, known=known
    )
    return Check(a.model.name, f.path, found.ok, found.hashed, found.detail), f.size

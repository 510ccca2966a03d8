"""Lock files on disk: ``reconcile lock``, and planning or applying with a lock.

The decisions are pure and live in :mod:`controller.manifest.lockfile` (what is stale, what to
re-resolve), :mod:`controller.planning.nodestate` (another machine's cache from its status) and
:mod:`controller.domain.budget` (the fit); this module reads and writes the files, asks the hub, and
prints what happened.  Problems are printed to stderr as ``where: what``; a function that
returns None has already said why.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from controller.domain import (
    DesiredModel,
    DesiredState,
    Plan,
    Reason,
    RemoteProblem,
    RemoteRevision,
    budget,
)
from controller.domain.units import human_bytes, plural
from controller.engine import status_file
from controller.hub import revisions
from controller.manifest import lockfile
from controller.manifest.loader import ManifestSet
from controller.manifest.lockfile import LockCheck, LockedModel, LockFile, LockFileError, Resolve
from controller.planning.nodestate import ReportedModel, ReportedState, observation_from_status
from controller.system.atomic import atomic_write_text
from controller.system.clock import utcnow
from controller.system.exits import ExitCode

RELOCK = "run `reconcile lock` and commit the lock"


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _models_by_file(
    manifests: ManifestSet, desired: DesiredState
) -> list[tuple[str, tuple[DesiredModel, ...]]]:
    by_name = {m.name: m for m in desired.models}
    return [(f.path, tuple(by_name[d.spec.name] for d in f.models)) for f in manifests.files]


def read_locks(manifests: ManifestSet) -> tuple[dict[str, LockFile | None], list[str]]:
    """The lock beside each manifest file (None: there is none), and the unreadable ones."""
    locks: dict[str, LockFile | None] = {}
    problems: list[str] = []
    for f in manifests.files:
        path = lockfile.lock_path_for(f.path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            locks[f.path] = None
            continue
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read: {e}")
            continue
        try:
            locks[f.path] = lockfile.parse(text, path)
        except LockFileError as e:
            problems.extend(str(e).splitlines())
    return locks, problems


# --------------------------------------------------------------------------- reconcile lock


def lock(
    manifests: ManifestSet, desired: DesiredState, upgrade: list[str] | None
) -> ExitCode:
    """Write the lock beside every manifest; all of them or, on any problem, none."""
    declared = [m.name for m in desired.models]
    unknown = sorted(set(upgrade or ()) - set(declared))
    if unknown:
        _say(f"--upgrade: unknown model(s) {', '.join(unknown)}; declared: {', '.join(declared)}")
        return ExitCode.ERROR
    wanted = None if upgrade is None else frozenset(upgrade)
    locks, problems = read_locks(manifests)
    for p in problems:
        _say(p)
    if problems and wanted != frozenset():
        _say("fix the lock, or delete it, or run `reconcile lock --upgrade` to rebuild every entry")
        return ExitCode.ERROR
    if problems:
        _say("--upgrade: the unreadable lock is rebuilt from the hub")
    files = _models_by_file(manifests, desired)
    steps = {
        path: lockfile.lock_steps(models, (locks.get(path) or LockFile(models={})).models, wanted)
        for path, models in files
    }
    answers = _resolve([s for file_steps in steps.values() for s in file_steps], desired.endpoint)
    errors: list[str] = []
    written: list[tuple[str, str, tuple[str, ...]]] = []  # (lock path, text, summary lines)
    for path, file_steps in steps.items():
        entries: dict[str, LockedModel] = {}
        lines: list[str] = []
        for step in file_steps:
            entry, problem = _entry(step, answers)
            if problem:
                errors.append(f"{step.model.name}: {problem}")
            elif entry is not None:
                entries[step.model.name] = entry
                lines.append(_summary_line(step, entry))
        text = lockfile.render(LockFile(models=entries), Path(path).name)
        written.append((lockfile.lock_path_for(path), text, tuple(lines)))
    if errors:
        for e in errors:
            _say(e)
        _say(f"{plural(len(errors), 'model')} could not be locked; no lock file was written.")
        return ExitCode.ERROR
    for lock_path, text, summary in written:
        if _current_text(lock_path) == text:
            print(f"{lock_path}: up to date")
        else:
            atomic_write_text(lock_path, text)
            print(f"{lock_path}: written")
        for line in summary:
            print(f"  {line}")
    return ExitCode.OK


def _resolve(
    steps: list[lockfile.LockStep], endpoint: str
) -> dict[tuple[str, str], RemoteRevision | RemoteProblem]:
    """Ask the hub once per (repo, revision or commit) that a step needs."""
    targets = sorted({t for s in steps if (t := _target(s)) is not None})
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        answers = list(pool.map(lambda t: revisions.resolve(t[0], t[1], endpoint), targets))
    return dict(zip(targets, answers, strict=True))


def _target(step: lockfile.LockStep) -> tuple[str, str] | None:
    if step.action is Resolve.KEEP:
        return None
    if step.action is Resolve.AT_COMMIT:
        assert step.entry is not None
        return (step.model.repo, step.entry.commit)
    return (step.model.repo, step.model.revision)


def _entry(
    step: lockfile.LockStep, answers: Mapping[tuple[str, str], RemoteRevision | RemoteProblem]
) -> tuple[LockedModel | None, str]:
    target = _target(step)
    if target is None:
        return step.entry, ""
    answer = answers[target]
    if isinstance(answer, RemoteProblem):
        return None, answer.message
    entry = lockfile.entry_from_remote(step.model, answer)
    if not entry.files:
        return None, step.model.nothing_selected()
    return entry, ""


def _summary_line(step: lockfile.LockStep, entry: LockedModel) -> str:
    where = f"{step.model.name}: {entry.revision} @ {entry.commit[:12]}"
    size = f"{plural(len(entry.files), 'file')}, {human_bytes(entry.size)}"
    if step.action is Resolve.KEEP:
        return f"{where}  {size}  (kept)"
    before = step.entry
    if before is not None and before.commit != entry.commit:
        where = f"{step.model.name}: {entry.revision} {before.commit[:12]} -> {entry.commit[:12]}"
    elif before == entry:
        return f"{where}  {size}  (unchanged: {step.reason})"
    return f"{where}  {size}  ({step.reason})"


def _current_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


# --------------------------------------------------------------------------- plan / apply


def check(manifests: ManifestSet, desired: DesiredState, *, locked: bool) -> LockCheck | None:
    """The locks against the manifests; None (after saying why) when planning must stop.

    Without any lock file, nothing is pinned and nothing is said: a lock is optional.  With
    ``locked`` (CI), a missing or stale lock is an error; otherwise a stale entry is ignored
    with a warning (returned in ``mismatches``), and the hub describes that model.
    """
    locks, problems = read_locks(manifests)
    if problems:
        for p in problems:
            _say(p)
        _say(f"the lock cannot be used; {RELOCK}")
        return None
    result = lockfile.check_locks(_models_by_file(manifests, desired), locks)
    if locked and not result.in_sync:
        for line in (*result.unlocked, *result.mismatches):
            _say(line)
        _say(f"--locked: the lock is out of sync with the manifests; {RELOCK}")
        return None
    return result


def stale_warnings(result: LockCheck) -> tuple[str, ...]:
    return tuple(f"{m} (entry ignored; {RELOCK})" for m in result.mismatches)


def plan(
    manifests: ManifestSet,
    desired: DesiredState,
    *,
    offline: bool,
    locked: bool,
    state_file: str | None,
    budget_bytes: int | None,
) -> Plan | None:
    from controller.engine.observe import observe
    from controller.planning.planner import plan as make_plan

    result = check(manifests, desired, locked=locked)
    if result is None:
        return None
    warnings = list(stale_warnings(result))
    errors: list[str] = []
    now = utcnow()
    chosen = None if budget_bytes is None else budget.explicit(budget_bytes)
    if state_file is not None:
        reported = _read_status(state_file)
        if reported is None:
            return None
        if not result.pinned and desired.models:
            _say(f"--state plans from the lock, and there is none that can be used; {RELOCK}")
            return None
        remote: dict[str, RemoteRevision | RemoteProblem] = {
            m.name: result.pinned.get(m.name)
            or RemoteProblem(
                Reason.HUB_UNREACHABLE,
                f"no usable lock entry, and --state plans from the lock; {RELOCK}",
            )
            for m in desired.models
            if not m.suspend
        }
        observed, notes = observation_from_status(desired, reported[0], remote)
        warnings.extend(notes)
        the_plan = make_plan(desired, observed, now)
        # Another machine: no cache to choose evictions from, only the total it reported.
        if chosen is not None:
            over, note = budget.check(the_plan, on_disk=reported[1], budget=chosen)
            errors.extend(over)
            warnings.extend(note)
        else:
            warnings.append(
                "the machine's disk size is not in its status; pass --budget-bytes N to check "
                "that the plan fits"
            )
    else:
        observed = observe(desired, now=now, offline=offline, pinned=result.pinned)
        if chosen is not None:
            # The budget stands for the machine's disk; this one (a CI runner's) says nothing.
            observed = replace(observed, disk=None)
        # This machine: the planner checks the budget itself, as retention chooses the
        # evictions that make it fit; by default retention.max_storage_usage_percent of the
        # cache's disk.  It counts only what modelsync manages: what other programs keep on
        # a shared disk is not modelsync's to count (the planner separately refuses transfers
        # that exceed the free space), or every plan on a busy shared disk would fail.
        the_plan = make_plan(desired, observed, now, budget=chosen)
    return replace(
        the_plan,
        warnings=(*warnings, *the_plan.warnings),
        errors=(*the_plan.errors, *errors),
    )


def _read_status(path: str) -> tuple[ReportedState, int] | None:
    """The status as planning needs it, and the bytes its models take on that machine."""
    if not Path(path).is_file():
        _say(f"{path}: no such status file")
        return None
    try:
        report = status_file.read(path)
    except Exception as e:  # a hand-edited or truncated file is a user problem, not a bug
        _say(f"{path}: not a modelsync status file: {e}")
        return None
    models = {
        m.name: ReportedModel(
            name=m.name,
            commit=m.commit,
            missing=m.missing_files,
            corrupt=m.corrupt_files,
            unverified=m.unverified_files,
            expected_size=m.expected_size,
            requested=m.reason is Reason.REQUESTED,
            uses_per_day=m.usage_frequency,
            last_used=m.last_used,
        )
        for m in report.models
    }
    # Every model the machine reported counts, declared here or not: until retention deletes
    # a model, its bytes stay on that disk.
    on_disk = sum(m.size_on_disk for m in report.models)
    return ReportedState(models=models, checked_at=report.updated_at), on_disk

"""``reconcile lock``: pin each model to a commit by asking the hub, and write the lock files.

Which entries are kept and which are resolved again is decided by
:func:`controller.manifest.lockfile.lock_steps` (pure); this module asks the hub, once per
(repo, revision or commit) the steps need, and writes every lock file -- all of them or, on any
problem, none, so a failed run never leaves one manifest's lock file ahead of another's.

Every answer the hub gives about a revision is remembered in the state store as well, with
the time it was asked, so that an offline pass and the request API see what the lock saw --
but only on a machine that already keeps a state database: locking in a CI checkout creates
no state directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.domain import DesiredState, RemoteProblem, RemoteRevision
from controller.domain.units import human_bytes, plural
from controller.hub import revisions
from controller.hub.watchdog import SpeedFloor
from controller.manifest import lockfile
from controller.manifest.loading import LockFiles, models_by_file
from controller.manifest.lockfile import LockedModel, LockFile, LockStep, Resolve
from controller.manifest.manifest_set import ManifestSet
from controller.store import DB_FILENAME, StateStore
from controller.system.atomic import atomic_write_text
from controller.system.clock import utcnow


class PinningRefused(Exception):
    """No lock file was written; ``problems`` says why, one line each, in the order found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class LockFileResult:
    """One lock file as ``reconcile lock`` left it."""

    path: str
    written: bool  # False: it already held exactly this text
    summary: tuple[str, ...]  # one line per model: its commit, size, and why


@dataclass(frozen=True)
class Pinned:
    notes: tuple[str, ...]  # said on the way (a lock file rebuilt because it was unreadable)
    lock_files: tuple[LockFileResult, ...]


def pin(
    manifests: ManifestSet,
    desired: DesiredState,
    lock_files: LockFiles,
    upgrade: list[str] | None,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> Pinned:
    """Write the lock file beside every manifest; raises :class:`PinningRefused`.

    ``upgrade``: None keeps every fresh entry; an empty list re-resolves every model (and
    rebuilds unreadable lock files); names re-resolve only those models.
    """
    declared = [m.name for m in desired.models]
    unknown = sorted(set(upgrade or ()) - set(declared))
    if unknown:
        raise PinningRefused(
            [f"--upgrade: unknown model(s) {', '.join(unknown)}; declared: {', '.join(declared)}"]
        )
    wanted = None if upgrade is None else frozenset(upgrade)
    notes = list(lock_files.problems)
    if notes and wanted != frozenset():
        raise PinningRefused(
            [
                *notes,
                "fix the lock, or delete it, or run `reconcile lock --upgrade` to rebuild every "
                "entry",
            ]
        )
    if notes:
        notes.append("--upgrade: the unreadable lock is rebuilt from the hub")
    steps = {
        path: lockfile.lock_steps(
            models, (lock_files.by_manifest.get(path) or LockFile(models={})).models, wanted
        )
        for path, models in models_by_file(manifests, desired)
    }
    asked_at = clock()
    floor = SpeedFloor(desired.min_speed, desired.min_speed_window)
    answers = _resolve([s for file_steps in steps.values() for s in file_steps], desired, floor)
    _remember(desired, [s for file_steps in steps.values() for s in file_steps], answers, asked_at)
    errors: list[str] = []
    rendered: list[tuple[str, str, tuple[str, ...]]] = []  # (lock file, text, summary lines)
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
        rendered.append((lockfile.lock_path_for(path), text, tuple(lines)))
    if errors:
        raise PinningRefused(
            [
                *notes,
                *errors,
                f"{plural(len(errors), 'model')} could not be locked; no lock file was written.",
            ]
        )
    return Pinned(tuple(notes), tuple(_write(*r) for r in rendered))


def _write(path: str, text: str, summary: tuple[str, ...]) -> LockFileResult:
    if _current_text(path) == text:
        return LockFileResult(path, written=False, summary=summary)
    atomic_write_text(path, text)
    return LockFileResult(path, written=True, summary=summary)


def _resolve(
    steps: list[LockStep], desired: DesiredState, floor: SpeedFloor
) -> dict[tuple[str, str], RemoteRevision | RemoteProblem]:
    """Ask the hub once per (repo, revision or commit) that a step needs."""
    targets = sorted({t for s in steps if (t := _target(s)) is not None})
    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        answers = list(
            pool.map(lambda t: revisions.resolve(t[0], t[1], desired.endpoint, floor), targets)
        )
    return dict(zip(targets, answers, strict=True))


def _remember(
    desired: DesiredState,
    steps: list[LockStep],
    answers: Mapping[tuple[str, str], RemoteRevision | RemoteProblem],
    asked_at: datetime,
) -> None:
    """Remember what the hub said each declared revision points to (an entry re-resolved at
    its locked commit says nothing about where the revision points now)."""
    learned = [
        answer
        for step in steps
        if step.action is not Resolve.AT_COMMIT
        and isinstance(
            answer := answers.get((step.model.repo, step.model.revision)), RemoteRevision
        )
    ]
    state_dir = Path(desired.state_dir)
    if not learned or not (state_dir / DB_FILENAME).is_file():
        return
    with StateStore.open(state_dir) as store:
        for answer in learned:
            store.remember_remote(answer, asked_at)


def _target(step: LockStep) -> tuple[str, str] | None:
    if step.action is Resolve.KEEP:
        return None
    if step.action is Resolve.AT_COMMIT:
        assert step.entry is not None
        return (step.model.repo, step.entry.commit)
    return (step.model.repo, step.model.revision)


def _entry(
    step: LockStep, answers: Mapping[tuple[str, str], RemoteRevision | RemoteProblem]
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


def _summary_line(step: LockStep, entry: LockedModel) -> str:
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

"""Loading, the first stage of a pass: the manifests and the lock files beside them.

:func:`load_manifests` reads a manifest file, or every manifest of a directory, checks each
and merges them; it either succeeds completely or raises :class:`ManifestError` with *every*
problem of *every* file, each as ``file:line: path: message`` -- a pull request should show all
of its mistakes in one CI run, not one per push.

:func:`load` adds the lock file beside each manifest (``wan2.2.yaml`` -> ``wan2.2.lock.yaml``)
and checks one against the other, so that a pass starts from one value: the desired state, the
models its lock files pin to a commit, and what to warn about -- or :class:`Rejected`, saying
every problem.  ``reconcile --plan``, ``--apply`` and ``--watch`` load through it;
``reconcile lock`` reads the same two halves (:func:`read_manifests`, :func:`read_lock_files`)
and decides itself what an unreadable lock file means, since rebuilding one is its job.

The lock file's format and the decisions about it (what is stale, what to re-resolve) are pure
and live in :mod:`controller.manifest.lockfile`; this module reads the files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.domain import DesiredModel, DesiredState, RemoteRevision
from controller.manifest import lockfile
from controller.manifest.consistency import check_consistency
from controller.manifest.desired import to_desired
from controller.manifest.lockfile import LockCheck, LockFile, LockFileError
from controller.manifest.manifest_set import ManifestSet, merge
from controller.manifest.problems import ManifestError, Problem
from controller.manifest.schema import Controller as Settings
from controller.manifest.validation import validate
from controller.manifest.yaml_source import read_document

RELOCK = "run `reconcile lock` and commit the lock"


class Rejected(Exception):
    """Manifests, or the lock files beside them, that no pass may start from.

    ``problems`` says what is wrong, one line each (a lock file's lines end with what to do
    about it); ``conclusion`` is the closing line a one-shot command prints after them, when
    the problems do not already end with one.  ``details`` holds the same problems with their
    parts (file, line, place in the document) where they are known: invalid manifests.
    """

    def __init__(
        self,
        problems: Iterable[str],
        conclusion: str | None = None,
        details: Iterable[Problem] = (),
    ) -> None:
        self.problems = tuple(problems)
        self.conclusion = conclusion
        self.details = tuple(details)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class LockFiles:
    """The lock file beside each manifest file, by the manifest's path (None: there is none),
    and the lock files that could not be read or parsed, one problem per line."""

    by_manifest: Mapping[str, LockFile | None]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Loaded:
    """What a pass starts from: valid manifests, their desired state, and their lock files'
    verdict."""

    manifests: ManifestSet
    desired: DesiredState
    # Models whose lock entry matches the manifest: the hub is not asked about them, and
    # their downloads are checked against the locked hashes.
    pinned: Mapping[str, RemoteRevision]
    # Lock entries that no longer match their manifest, ignored: the hub describes those.
    warnings: tuple[str, ...]

    @property
    def key(self) -> str:
        """Equal keys, nothing to do: the manifests' generation and the pinned commits."""
        pins = sorted((name, rev.commit) for name, rev in self.pinned.items())
        return hashlib.sha256(f"{self.manifests.generation}|{pins}".encode()).hexdigest()

    @property
    def settings(self) -> Settings:
        return self.manifests.controller


def load(path: str | Path, *, locked: bool = False) -> Loaded:
    """Load the manifests at ``path`` and their lock files; raises :class:`Rejected`.

    Without any lock file, nothing is pinned and nothing is said: a lock is optional.  With
    ``locked`` (CI), a missing or stale lock is rejected; otherwise a stale entry is ignored
    with a warning, and the hub describes that model.  An unreadable lock file is rejected
    either way: what it pins cannot be known.
    """
    manifests, desired = read_manifests(path)
    lock_files = read_lock_files(manifests)
    if lock_files.problems:
        raise Rejected([*lock_files.problems, f"the lock cannot be used; {RELOCK}"])
    verdict = lockfile.check_locks(models_by_file(manifests, desired), lock_files.by_manifest)
    if locked and not verdict.in_sync:
        raise Rejected(
            [
                *verdict.unlocked,
                *verdict.mismatches,
                f"--locked: the lock is out of sync with the manifests; {RELOCK}",
            ]
        )
    return Loaded(manifests, desired, dict(verdict.pinned), _stale_warnings(verdict))


def read_manifests(path: str | Path) -> tuple[ManifestSet, DesiredState]:
    """Every manifest at ``path``, merged, and the desired state they declare; raises
    :class:`Rejected` listing every problem of every file."""
    try:
        manifests = load_manifests(path)
    except ManifestError as e:
        count = len(e.problems)
        raise Rejected(
            (str(p) for p in e.problems),
            f"{count} problem{'s' if count != 1 else ''} found; nothing was changed.",
            e.problems,
        ) from None
    return manifests, to_desired(manifests)


def read_lock_files(manifests: ManifestSet) -> LockFiles:
    by_manifest: dict[str, LockFile | None] = {}
    problems: list[str] = []
    for f in manifests.files:
        path = lockfile.lock_path_for(f.path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            by_manifest[f.path] = None
            continue
        except UnicodeDecodeError as e:
            # A damaged lock (garbage over part of it) is reported like any bad lock: at the
            # line where the first undecodable byte sits.
            line = Path(path).read_bytes().count(b"\n", 0, e.start) + 1
            problems.append(f"{path}:{line}: not UTF-8 text (byte {e.start})")
            continue
        except OSError as e:
            problems.append(f"{path}:0: cannot read: {e.strerror or e}")
            continue
        try:
            by_manifest[f.path] = lockfile.parse(text, path)
        except LockFileError as e:
            problems.extend(str(e).splitlines())
    return LockFiles(by_manifest, tuple(problems))


def models_by_file(
    manifests: ManifestSet, desired: DesiredState
) -> list[tuple[str, tuple[DesiredModel, ...]]]:
    """Each manifest file's path with the desired models it declares, in file order."""
    by_name = {m.name: m for m in desired.models}
    return [(f.path, tuple(by_name[d.spec.name] for d in f.models)) for f in manifests.files]


def _stale_warnings(verdict: LockCheck) -> tuple[str, ...]:
    return tuple(f"{m} (entry ignored; {RELOCK})" for m in verdict.mismatches)


# --------------------------------------------------------------------------- manifests


def load_manifests(path: str | Path) -> ManifestSet:
    """Load a manifest file, or every manifest of a directory, and merge them.

    Raises :class:`ManifestError` listing every problem of every file.
    """
    docs = [read_document(p, str(p)) for p in _manifest_paths(Path(path))]
    for doc in docs:
        if isinstance(doc.data, dict):
            validate(doc)
    check_consistency(docs)
    order = {doc.file: index for index, doc in enumerate(docs)}
    problems = sorted(
        (p for doc in docs for p in doc.problems), key=lambda p: (order[p.file], p.line)
    )
    if problems:
        raise ManifestError(problems)
    return merge(docs)


def _is_manifest_name(name: str) -> bool:
    # Lock files are written beside manifests; hidden files are editor droppings.
    if name.startswith(".") or name.endswith((".lock.yaml", ".lock.yml")):
        return False
    return name.endswith((".yaml", ".yml"))


def _manifest_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise ManifestError([Problem(str(path), 0, "-", "no such file or directory")])
    if not path.is_dir():
        return [path]
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise ManifestError([Problem(str(path), 0, "-", f"cannot list: {exc.strerror}")]) from None
    found = [p for p in entries if _is_manifest_name(p.name) and p.is_file()]
    if not found:
        message = "no manifests here: expected *.yaml or *.yml files (*.lock.yaml are lock files)"
        raise ManifestError([Problem(str(path), 0, "-", message)])
    return found

"""The Hugging Face cache layout on disk: where things are, and reading them without change.

``models--org--name/{blobs,snapshots,refs}`` as huggingface_hub writes it; see
``huggingface_hub/file_download.py`` and ``utils/_cache_manager.py``.  Every path built here
is checked to stay under the cache root, because repo ids, revisions and file names come
from manifests and from a hub, and neither is trusted.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

from controller.domain import CachedFile, CachedRepo, PartialFile, QuarantinedFile
from controller.domain.observed import QUARANTINE_DIR as QUARANTINE_DIR
from controller.system.atomic import atomic_write_text, fsync_dir

MODEL_PREFIX = "models--"
# The layout stores a tag like a branch (``refs/<name>``, what the client writes when asked
# for either), so a repo folder served by ``reconcile serve`` may name its tags in this
# sidecar, modelsync's own addition, which ``scan_cache_dir`` ignores.
TAGS_FILE = ".modelsync-tags"


class UnsafePathError(ValueError):
    """A name from a manifest or a hub would resolve outside the cache root."""


def repo_folder(cache_dir: Path, repo: str) -> Path:
    return _inside(cache_dir, cache_dir / (MODEL_PREFIX + repo.replace("/", "--")))


def list_repos(cache_dir: Path) -> list[str]:
    """The model repos the cache holds, whoever put them there (``models--org--name``).

    Datasets and spaces are not models and are left out; so is anything that is not a
    directory, such as huggingface_hub's ``.locks`` or ``CACHEDIR.TAG``.
    """
    if not cache_dir.is_dir():
        return []
    return sorted(
        entry.name[len(MODEL_PREFIX) :].replace("--", "/")
        for entry in cache_dir.iterdir()
        if entry.name.startswith(MODEL_PREFIX)
        and len(entry.name) > len(MODEL_PREFIX)
        and entry.is_dir()
        and not entry.is_symlink()
    )


def prepare_repo_folder(cache_dir: Path, repo: str) -> Path:
    """Make ``blobs/`` and ``snapshots/`` of a repo's folder before the first byte lands.

    huggingface_hub's ``scan_cache_dir`` (what ``hf cache ls`` and ``hf cache rm`` read)
    ignores a repo folder without ``snapshots/``, with a "Repo ignored" warning; a first
    download killed before any file completed would otherwise leave ``blobs/*.incomplete``
    that neither lists nor removes.  ``refs/`` is not made here: a ref is written only once
    its commit is complete and verified, and an empty ``snapshots/<commit>/`` would be listed
    as a revision that holds nothing.
    """
    folder = repo_folder(cache_dir, repo)
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "snapshots").mkdir(exist_ok=True)
    return folder


def snapshot_dir(cache_dir: Path, repo: str, commit: str) -> Path:
    """A commit's snapshot directory.  The commit comes from a hub (or a lock, or a status
    file), so it must be one plain name directly under ``snapshots/``."""
    folder = repo_folder(cache_dir, repo)
    if not commit or "/" in commit or "\\" in commit or commit in (".", ".."):
        raise UnsafePathError(f"unsafe commit {commit!r}")
    return _inside(folder / "snapshots", folder / "snapshots" / commit)


def snapshot_path(cache_dir: Path, repo: str, commit: str, path: str) -> Path:
    root = snapshot_dir(cache_dir, repo, commit)
    return _inside(root, root / path)


def blob_path(cache_dir: Path, repo: str, etag: str) -> Path:
    folder = repo_folder(cache_dir, repo)
    return _inside(folder / "blobs", folder / "blobs" / etag)


def ref_path(cache_dir: Path, repo: str, revision: str) -> Path:
    folder = repo_folder(cache_dir, repo)
    return _inside(folder / "refs", folder / "refs" / revision)


def quarantine_path(cache_dir: Path, repo: str, etag: str) -> Path:
    folder = repo_folder(cache_dir, repo)
    return _inside(folder / QUARANTINE_DIR, folder / QUARANTINE_DIR / etag)


def check_repo_path(path: str) -> str:
    """A path in a repo exactly as the hub spells one: relative, '/'-separated, no empty, '.'
    or '..' part, no backslash or NUL.  Stricter than :func:`check_relative`: it refuses
    every other spelling of a name rather than only the ones that escape."""
    if not _is_repo_path(path):
        raise UnsafePathError(f"invalid path in repo: {path!r}")
    return path


def check_ref_name(name: str) -> str:
    """A ref's name: it may nest (``refs/pr/1``) but must stay inside ``refs/``, and no part
    starts with '.', which git refuses and which is how temporary files are named."""
    if not _is_repo_path(name) or any(p.startswith(".") for p in name.split("/")):
        raise UnsafePathError(f"invalid ref name: {name!r}")
    return name


def _is_repo_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts)


def write_ref(cache_dir: Path, repo: str, revision: str, commit: str) -> None:
    """Point ``refs/<revision>`` at ``commit``, once the commit's files are durable.

    Blobs are synced before they are renamed into place, but the renames and the snapshot's
    links are not synced one by one (a directory sync per file was most of the cost of
    fetching many small files): they are synced here, one sync per directory, before the ref
    that names the commit is written.  So a ref never survives a power loss that the files it
    names did not.  The ref itself is replaced atomically: a reader sees the old commit or
    the new one, never a missing or half-written ref.
    """
    ref = ref_path(cache_dir, repo, revision)
    folder = repo_folder(cache_dir, repo)
    snapshot = snapshot_dir(cache_dir, repo, commit)
    directories = [folder / "blobs", folder / "snapshots"]
    directories += [Path(d) for d, _dirs, _files in os.walk(snapshot)]
    for directory in directories:
        if directory.is_dir():
            fsync_dir(directory)
    atomic_write_text(ref, commit)


def read_ref(ref: Path) -> str | None:
    """The commit the ref file ``ref`` names, or None when there is no ref (yet) to read."""
    stamped = _read_ref_stamped(ref)
    return None if stamped is None else stamped[0]


def read_tags(folder: Path) -> frozenset[str]:
    """The names under a repo folder's ``refs/`` that are tags (see :data:`TAGS_FILE`)."""
    try:
        names = json.loads((folder / TAGS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return frozenset()
    return frozenset(str(n) for n in names)


def check_relative(path: str) -> None:
    """Reject file names that could address something outside a snapshot."""
    parts = path.replace("\\", "/").split("/")
    if (
        not path
        or path.startswith(("/", "\\"))
        or ".." in parts
        or "" in parts[:-1]
        or ":" in parts[0]
    ):
        raise UnsafePathError(f"unsafe file name {path!r}")


def _inside(root: Path, candidate: Path) -> Path:
    """``candidate`` lexically under ``root`` (symlinks in the cache are checked on read)."""
    root_abs = Path(os.path.abspath(root))
    cand_abs = Path(os.path.abspath(candidate))
    if cand_abs != root_abs and root_abs not in cand_abs.parents:
        raise UnsafePathError(f"{candidate} is outside {root}")
    return candidate


def read_repo(cache_dir: Path, repo: str) -> CachedRepo:
    """Everything the cache holds for ``repo``; an absent repo reads as empty."""
    folder = repo_folder(cache_dir, repo)
    if not folder.is_dir():
        return CachedRepo(repo=repo)
    refs, ref_times = _read_refs(folder / "refs")
    return CachedRepo(
        repo=repo,
        refs=refs,
        ref_times=ref_times,
        snapshots=_read_snapshots(folder),
        partials=_read_partials(folder / "blobs"),
        blobs=_read_blobs(folder / "blobs"),
        quarantined=_read_quarantine(folder / QUARANTINE_DIR),
    )


def _read_refs(refs_dir: Path) -> tuple[dict[str, str], dict[str, datetime]]:
    """Each ref's commit, and when the ref file was last written.

    A ref is rewritten (atomically, by rename) only when it moves, so its mtime is the moment
    of the switch.  Commit and mtime come from one open file, so a switch racing this read
    cannot pair the old commit with the new time or the other way round.
    """
    refs: dict[str, str] = {}
    times: dict[str, datetime] = {}
    if not refs_dir.is_dir():
        return refs, times
    for dirpath, _dirs, names in os.walk(refs_dir):
        for name in names:
            path = Path(dirpath) / name
            stamped = _read_ref_stamped(path)
            if stamped is not None:
                key = path.relative_to(refs_dir).as_posix()
                refs[key], times[key] = stamped
    return refs, times


def _read_ref_stamped(ref: Path) -> tuple[str, datetime] | None:
    """A ref's commit and the time its file was last written, both from one open file."""
    try:
        # Refs are hex; "replace" turns a damaged one into a value no check accepts, instead
        # of an exception in the middle of reading a whole cache.
        with ref.open(encoding="ascii", errors="replace") as f:
            commit = f.read().strip()
            mtime = os.fstat(f.fileno()).st_mtime
    except OSError:
        return None
    return commit, datetime.fromtimestamp(mtime, tz=timezone.utc)


def _read_snapshots(folder: Path) -> dict[str, dict[str, CachedFile]]:
    snapshots_dir = folder / "snapshots"
    snapshots: dict[str, dict[str, CachedFile]] = {}
    if not snapshots_dir.is_dir():
        return snapshots
    for commit_dir in sorted(snapshots_dir.iterdir()):
        if commit_dir.is_dir() and not commit_dir.is_symlink():
            snapshots[commit_dir.name] = _read_snapshot(commit_dir, folder / "blobs")
    return snapshots


def _read_snapshot(commit_dir: Path, blobs_dir: Path) -> dict[str, CachedFile]:
    files: dict[str, CachedFile] = {}
    root = str(commit_dir)
    blobs = os.path.normpath(blobs_dir)
    # os.walk does not follow directory symlinks, so a planted link cannot widen the scan.
    # Strings rather than Path objects: a pass reads every file of every cached snapshot,
    # and building Paths was most of the cost of observing a large cache.
    for dirpath, _dirs, names in os.walk(root):
        prefix = os.path.relpath(dirpath, root).replace(os.sep, "/") + "/"
        if prefix == "./":
            prefix = ""
        for name in names:
            files[prefix + name] = _read_entry(prefix + name, os.path.join(dirpath, name), blobs)
    return files


def _read_entry(rel: str, entry: str, blobs_dir: str) -> CachedFile:
    blob = ""
    try:
        target = os.readlink(entry)
    except OSError:
        target = None  # not a link (or gone): stat below tells
    if target is not None:
        resolved = os.path.normpath(os.path.join(os.path.dirname(entry), target))
        if os.path.dirname(resolved) != blobs_dir:
            # A link that leaves the repo's blobs/ is not something huggingface_hub writes;
            # reading through it could report a file outside the cache as ours.
            return CachedFile(rel, blob="", size=-1)
        blob = os.path.basename(resolved)
    try:
        st = os.stat(entry)
    except OSError:
        return CachedFile(rel, blob=blob, size=-1)
    return CachedFile(rel, blob=blob, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


def _read_partials(blobs_dir: Path) -> tuple[PartialFile, ...]:
    partials = []
    for entry in sorted(_entries(blobs_dir), key=lambda e: e.name):
        # What glob("*.incomplete") matched: hidden names are not partials.
        if entry.name.startswith(".") or not entry.name.endswith(".incomplete"):
            continue
        try:
            blob = entry.name.split(".")[0]
            partials.append(
                PartialFile(
                    blob=blob,
                    size=entry.stat().st_size,
                    resumable=entry.name == f"{blob}.incomplete",
                )
            )
        except OSError:
            continue
    return tuple(partials)


def _read_blobs(blobs_dir: Path) -> dict[str, int]:
    blobs: dict[str, int] = {}
    for entry in _entries(blobs_dir):
        if entry.name.endswith(".incomplete"):
            continue  # a download in progress, reported as a partial
        try:
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            blobs[entry.name] = st.st_size
    return blobs


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of ``directory`` (none when it is absent): scandir's entries carry their
    names without a Path built per blob, which a read of a large cache pays for every file."""
    try:
        with os.scandir(directory) as found:
            return list(found)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_quarantine(quarantine_dir: Path) -> tuple[QuarantinedFile, ...]:
    """The damaged bytes moved aside, each with the time of its move (its mtime: the move
    stamps it, see ``CacheWorkspace``), which retention's grace period counts from."""
    if not quarantine_dir.is_dir():
        return ()
    found = []
    for path in sorted(quarantine_dir.iterdir()):
        try:
            st = path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            since = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
            found.append(QuarantinedFile(path.name, st.st_size, since))
    return tuple(found)

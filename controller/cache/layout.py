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
    # Every name refused below holds one of these: most names are passed without a split.
    if (
        path
        and path[0] != "/"
        and "\\" not in path
        and ".." not in path
        and "//" not in path
        and ":" not in path
    ):
        return
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
    # Compared as strings: this runs for every path the cache names, and building a Path
    # for each of the candidate's parents cost more than the transfer of a small file.
    root_abs = os.path.abspath(root)
    cand_abs = os.path.abspath(candidate)
    if cand_abs != root_abs and not cand_abs.startswith(root_abs.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"{candidate} is outside {root}")
    return candidate


def read_repo(cache_dir: Path, repo: str) -> CachedRepo:
    """Everything the cache holds for ``repo``; an absent repo reads as empty.

    Read with strings, not Path objects: a pass reads every repo of the cache, and joining,
    checking and opening through pathlib was a fifth of the time of planning a cache of a
    thousand repos."""
    folder = os.fspath(repo_folder(cache_dir, repo))
    if not os.path.isdir(folder):
        return CachedRepo(repo=repo)
    refs, ref_times = _read_refs(os.path.join(folder, "refs"))
    blob_entries = _entries(os.path.join(folder, "blobs"))
    blob_stats = _stat_blobs(blob_entries)
    return CachedRepo(
        repo=repo,
        refs=refs,
        ref_times=ref_times,
        snapshots=_read_snapshots(folder, blob_stats),
        partials=_read_partials(blob_entries),
        blobs={name: st.st_size for name, st in blob_stats.items()},
        quarantined=_read_quarantine(os.path.join(folder, QUARANTINE_DIR)),
    )


def _read_refs(refs_dir: str) -> tuple[dict[str, str], dict[str, datetime]]:
    """Each ref's commit, and when the ref file was last written.

    A ref is rewritten (atomically, by rename) only when it moves, so its mtime is the moment
    of the switch.  Commit and mtime come from one open file, so a switch racing this read
    cannot pair the old commit with the new time or the other way round.
    """
    refs: dict[str, str] = {}
    times: dict[str, datetime] = {}
    _read_refs_dir(refs_dir, "", refs, times)
    return refs, times


def _read_refs_dir(
    directory: str, prefix: str, refs: dict[str, str], times: dict[str, datetime]
) -> None:
    """The refs under ``directory`` (``refs/pr/1`` is a ref too), as ``os.walk`` lists them:
    a link to a directory is not followed."""
    subdirs: list[os.DirEntry[str]] = []
    for entry in _listing(directory):
        if _is_dir(entry, follow_symlinks=True):
            if not _is_symlink(entry):
                subdirs.append(entry)
            continue
        stamped = _read_ref_stamped(entry.path)
        if stamped is not None:
            refs[prefix + entry.name], times[prefix + entry.name] = stamped
    for subdir in subdirs:
        _read_refs_dir(subdir.path, f"{prefix}{subdir.name}/", refs, times)


def _read_ref_stamped(ref: str | Path) -> tuple[str, datetime] | None:
    """A ref's commit and the time its file was last written, both from one open file."""
    try:
        fd = os.open(ref, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
        mtime = os.fstat(fd).st_mtime
    except OSError:
        return None
    finally:
        os.close(fd)
    # Refs are hex; "replace" turns a damaged one into a value no check accepts, instead of
    # an exception in the middle of reading a whole cache.
    commit = b"".join(chunks).decode("ascii", errors="replace").strip()
    return commit, datetime.fromtimestamp(mtime, tz=timezone.utc)


def _read_snapshots(
    folder: str, blob_stats: dict[str, os.stat_result]
) -> dict[str, dict[str, CachedFile]]:
    snapshots_dir = os.path.join(folder, "snapshots")
    snapshots: dict[str, dict[str, CachedFile]] = {}
    blobs = os.path.normpath(os.path.join(folder, "blobs"))
    for entry in sorted(_entries(snapshots_dir), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            snapshots[entry.name] = _read_snapshot(entry.path, blobs, blob_stats)
    return snapshots


def _read_snapshot(
    root: str, blobs_dir: str, blob_stats: dict[str, os.stat_result]
) -> dict[str, CachedFile]:
    files: dict[str, CachedFile] = {}
    _read_snapshot_dir(root, "", blobs_dir, blob_stats, files)
    return files


def _read_snapshot_dir(
    dirpath: str,
    prefix: str,
    blobs_dir: str,
    blob_stats: dict[str, os.stat_result],
    files: dict[str, CachedFile],
) -> None:
    """The files under ``dirpath`` into ``files``, as ``os.walk`` would list them.

    Written out rather than ``os.walk``, which stats every link to tell a link to a directory
    from one to a file: a link to a blob already stat'ed by the scan of ``blobs/`` is a
    file, and only other links cost a stat.  Directory links are not followed, so a planted
    link cannot widen the scan.  Strings rather than Path objects: a pass reads every file of
    every cached snapshot, and building Paths was most of the cost of observing a large cache.
    """
    # The link huggingface_hub writes from this depth: up to the repo folder, then blobs/.
    link_prefix = "../" * (prefix.count("/") + 2) + "blobs/"
    subdirs: list[os.DirEntry[str]] = []
    for entry in _listing(dirpath):
        rel = prefix + entry.name
        if _is_symlink(entry):
            found = _read_link(rel, entry, dirpath, link_prefix, blobs_dir, blob_stats)
            if found is not None:
                files[rel] = found
        elif _is_dir(entry, follow_symlinks=False):
            subdirs.append(entry)
        else:
            files[rel] = _stat_entry(rel, entry.path, blob="")
    for subdir in subdirs:
        _read_snapshot_dir(subdir.path, f"{prefix}{subdir.name}/", blobs_dir, blob_stats, files)


def _read_link(
    rel: str,
    entry: os.DirEntry[str],
    dirpath: str,
    link_prefix: str,
    blobs_dir: str,
    blob_stats: dict[str, os.stat_result],
) -> CachedFile | None:
    """A snapshot link: from the link alone when it names a blob of ``blob_stats``, whose
    stat is the one a stat through the link would return; None for a link to a directory
    (not a file, and not followed)."""
    try:
        target: str | None = os.readlink(entry.path)
    except OSError:
        target = None  # replaced or gone since the listing: the stat below tells
    blob = "" if target is None else _linked_blob(target, link_prefix, dirpath, blobs_dir)
    known = blob_stats.get(blob) if blob else None
    if known is not None:
        return CachedFile(
            rel, blob=blob, size=known.st_size, mtime_ns=known.st_mtime_ns, inode=known.st_ino
        )
    if _is_dir(entry, follow_symlinks=True):
        return None
    if target is not None and not blob:
        # A link that leaves the repo's blobs/ is not something huggingface_hub writes;
        # reading through it could report a file outside the cache as ours.
        return CachedFile(rel, blob="", size=-1)
    return _stat_entry(rel, entry.path, blob=blob)


def _stat_entry(rel: str, path: str, *, blob: str) -> CachedFile:
    try:
        st = os.stat(path)
    except OSError:
        return CachedFile(rel, blob=blob, size=-1)
    return CachedFile(rel, blob=blob, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


def _listing(directory: str) -> list[os.DirEntry[str]]:
    """A directory's entries; none when it cannot be listed (``os.walk`` skips it too)."""
    try:
        with os.scandir(directory) as found:
            return list(found)
    except OSError:
        return []


def _is_symlink(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _is_dir(entry: os.DirEntry[str], *, follow_symlinks: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:
        return False


def _linked_blob(target: str, link_prefix: str, dirpath: str, blobs_dir: str) -> str:
    """The name in ``blobs_dir`` a link from ``dirpath`` resolves to, or "" if it leaves it.

    The spelling huggingface_hub writes is recognised as text (path arithmetic on every
    link of a large cache is measurable); any other spelling is resolved lexically."""
    if target.startswith(link_prefix):
        name = target[len(link_prefix) :]
        if name not in ("", ".", "..") and "/" not in name:
            return name
    resolved = os.path.normpath(os.path.join(dirpath, target))
    if os.path.dirname(resolved) != blobs_dir:
        return ""
    return os.path.basename(resolved)


def _read_partials(blob_entries: list[os.DirEntry[str]]) -> tuple[PartialFile, ...]:
    partials = []
    for entry in sorted(blob_entries, key=lambda e: e.name):
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


def _stat_blobs(blob_entries: list[os.DirEntry[str]]) -> dict[str, os.stat_result]:
    """Each complete blob's stat (through a link, as a snapshot's link is read): regular
    files only, without the partials of downloads in progress."""
    blobs: dict[str, os.stat_result] = {}
    for entry in blob_entries:
        if entry.name.endswith(".incomplete"):
            continue  # a download in progress, reported as a partial
        try:
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            blobs[entry.name] = st
    return blobs


def _entries(directory: str) -> list[os.DirEntry[str]]:
    """The entries of ``directory`` (none when it is absent): scandir's entries carry their
    names without a Path built per blob, which a read of a large cache pays for every file."""
    try:
        with os.scandir(directory) as found:
            return list(found)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_quarantine(quarantine_dir: str) -> tuple[QuarantinedFile, ...]:
    """The damaged bytes moved aside, each with the time of its move (its mtime: the move
    stamps it, see ``CacheWorkspace``), which retention's grace period counts from."""
    found = []
    for entry in sorted(_entries(quarantine_dir), key=lambda e: e.name):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            since = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
            found.append(QuarantinedFile(entry.name, st.st_size, since))
    return tuple(found)

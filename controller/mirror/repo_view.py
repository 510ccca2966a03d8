"""A repo of the served cache as the hub describes one: revisions, their files, refs and tags.

The directory may change underneath (a controller downloading into it, a branch moving), so
refs are re-read on every call; a revision's files are read again only when its
:class:`Stamp` changes (a mirror answers the same revisions to many nodes every pass).
Every name comes from a request, so every path is checked to resolve inside the cache
directory, and only what huggingface_hub writes is served: links from a snapshot into its own
repo's ``blobs/`` (or plain copies, as with ``HF_HUB_DISABLE_SYMLINKS``), never a partial
download or a temporary file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Exported lazily, which mypy cannot see; the module's documented import.
from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

from controller.cache import layout
from controller.cache.hashing import HashKind, digest_file
from controller.domain import COMMIT_RE
from controller.mirror.errors import HubError
from controller.mirror.git_objects import (
    GitTree,
    blob_id,
    build_tree,
    default_lfs_rule,
    is_lfs_etag,
    lfs_pointer,
)
from controller.system.atomic import TEMP_NAME_RE

# huggingface_hub rewrites refs/<name> through refs/<name>.<uuid8>.tmp.
_CLIENT_TEMP_REF_RE = re.compile(r".+\.[0-9a-f]{8}\.tmp")

# Revisions kept read, most recently asked first: a mirror's working set is the models its
# nodes declare; a revision of 50 files costs tens of kB.
REVISION_CACHE_SIZE = 1024
# A directory changed this recently may change again within the same mtime tick, which its
# stamp could not tell apart (git's "racily clean" files): such a revision is not cached.
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class Stamp:
    """What changes when a revision's servable files may have: every directory of its snapshot
    (entries added, removed, relinked), the repo's ``blobs/`` (a blob arriving or deleted), and
    every plain copy (HF_HUB_DISABLE_SYMLINKS: edited in place, no directory notices)."""

    directories: tuple[tuple[str, int, int], ...]  # (path, inode, mtime_ns)
    copies: tuple[tuple[str, int, int, int], ...]  # (path, inode, size, mtime_ns)

    def settled(self, now_ns: int) -> bool:
        newest = max((m for _, _, m in self.directories), default=0)
        newest = max([newest, *(m for _, _, _, m in self.copies)])
        return now_ns - newest > SETTLE_NS


@dataclass(frozen=True)
class FileEntry:
    """One file of a revision, as the Hub describes it."""

    path: str
    blob: Path  # fully resolved, checked to lie inside the cache directory
    etag: str  # sha256 (LFS) or git blob sha1, i.e. the blob's file name
    size: int

    @property
    def is_lfs(self) -> bool:
        return is_lfs_etag(self.etag)

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.etag, self.size))

    @property
    def blob_id(self) -> str:
        return blob_id(self.etag, self.size)


@dataclass(frozen=True)
class Revision:
    """A revision's servable files.  Read under a settled ``stamp``, it is one value for
    as long as the stamp holds, which is what its equality and hash say (documents built
    from it are cached by them); without one, it is equal only to itself."""

    repo_id: str
    commit: str
    files: Mapping[str, FileEntry]
    last_modified: float
    stamp: Stamp | None = field(default=None)

    def __eq__(self, other: object) -> bool:
        if self.stamp is None or not isinstance(other, Revision):
            return self is other
        return (self.repo_id, self.commit, self.stamp) == (other.repo_id, other.commit, other.stamp)

    def __hash__(self) -> int:
        return hash((self.repo_id, self.commit, self.stamp)) if self.stamp is not None else id(self)

    def tree(self) -> GitTree:
        return build_tree({path: entry.blob_id for path, entry in self.files.items()})


class RepoView:
    """Read-only view of one ``models--org--name`` folder, re-read on every call."""

    def __init__(self, root: Path, repo_id: str, folder: Path) -> None:
        self.root = root
        self.repo_id = repo_id
        self.folder = folder
        self._blobs_named = os.path.normpath(folder / "blobs")  # where a link's first hop goes

    def resolve(self, revision: str) -> str:
        """Branch, tag, ``refs/pr/N`` or full commit id -> commit id."""
        name = revision
        for prefix in ("refs/heads/", "refs/tags/"):
            name = name.removeprefix(prefix)
        if COMMIT_RE.match(name) and self._has_snapshot(name):
            return name
        commit = self._read_ref(name)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def revision(self, revision: str) -> Revision:
        commit = self.resolve(revision)
        try:
            stamp = _stamp(self._snapshot(commit), self.folder / "blobs")
            if stamp.settled(time.time_ns()):
                return _read_settled(self.root, self.repo_id, self.folder, commit, stamp)
            return self._read(commit, None)
        except FileNotFoundError:  # the revision was deleted from the cache meanwhile
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}") from None

    def _read(self, commit: str, stamp: Stamp | None) -> Revision:
        """Every servable file of the snapshot: a link resolved and checked per file."""
        snapshot = self._snapshot(commit)
        files = {}
        for rel, path in _walk(str(snapshot)):
            entry = self._entry(rel, path)
            if entry is not None:
                files[rel] = entry
        return Revision(self.repo_id, commit, files, snapshot.stat().st_mtime, stamp)

    def file(self, commit: str, path: str) -> FileEntry | None:
        """Look up one file without scanning the whole snapshot (HEADs come in storms)."""
        snapshot = self._snapshot(commit)
        parent = snapshot
        for part in path.split("/")[:-1]:
            parent = parent / part
            if parent.is_symlink():  # _walk does not follow directory links either
                return None
        return self._entry(path, str(snapshot / path))

    def refs(self) -> list[tuple[str, str]]:
        """(name, commit) of every ref whose snapshot is present."""
        refs_dir = self.folder / "refs"
        found = []
        for name, _ in _walk(str(refs_dir)) if refs_dir.is_dir() else ():
            if _CLIENT_TEMP_REF_RE.fullmatch(name):
                continue  # huggingface_hub mid-way through rewriting a ref
            commit = self._read_ref(name)
            if commit is not None:
                found.append((name, commit))
        return found

    def tags(self) -> frozenset[str]:
        return layout.read_tags(self.folder)

    def history(self, commit: str) -> list[tuple[str, float]]:
        """(commit, time) of ``commit``, then of every other commit the cache holds, newest
        snapshot first.

        A cache keeps no parents, nor commit dates (a snapshot's mtime is when it arrived),
        so which cached commits came before ``commit`` is unknown: all are listed, the one
        asked for first.
        """
        try:
            own = self._snapshot(commit).stat().st_mtime
        except FileNotFoundError:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {commit}") from None
        others = []
        with os.scandir(self.folder / "snapshots") as scan:
            for entry in scan:
                if entry.name == commit or not COMMIT_RE.match(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted since it was listed
                    if entry.is_dir() and self._has_snapshot(entry.name):
                        others.append((entry.name, entry.stat().st_mtime))
        others.sort(key=lambda item: (-item[1], item[0]))
        return [(commit, own), *others]

    def _snapshot(self, commit: str) -> Path:
        return self.folder / "snapshots" / commit

    def _has_snapshot(self, commit: str) -> bool:
        snapshot = self._snapshot(commit)
        return snapshot.is_dir() and _within(snapshot, self.root)

    def _read_ref(self, name: str) -> str | None:
        try:
            layout.check_ref_name(name)
        except ValueError:
            return None
        ref = self.folder / "refs" / name
        if not ref.is_file() or not _within(ref, self.root):
            return None
        commit = layout.read_ref(ref)
        ok = commit is not None and COMMIT_RE.match(commit) and self._has_snapshot(commit)
        return commit if ok else None

    def _entry(self, rel: str, path: str) -> FileEntry | None:
        """A servable file, or None for anything that is not one (or escapes the cache).

        Paths are strings here: a revision's first read makes one entry per file, and
        ``pathlib`` objects (several per file) were most of its cost."""
        if os.path.islink(path):
            etag = self._blob_name(path)
            if etag is None:
                return None
            stored = self._stored_blob(etag)
            if stored is not None:
                return FileEntry(rel, stored[0], etag, stored[1])
        elif not os.path.isfile(path) or rel.endswith(".incomplete"):
            return None
        else:
            etag = None  # a copied file (HF_HUB_DISABLE_SYMLINKS): hash it below
        real = Path(os.path.realpath(path))
        if not real.is_file() or not _within(real, self.root):
            return None
        info = real.stat()
        if etag is None:
            # A copy carries no etag; guess LFS-ness the way the Hub's defaults would.
            lfs = default_lfs_rule(rel, info.st_size)
            etag = _hash_copy(str(real), info.st_size, info.st_mtime_ns, info.st_ino, lfs)
        return FileEntry(rel, real, etag, info.st_size)

    def _stored_blob(self, name: str) -> tuple[Path, int] | None:
        """``blobs/<name>`` and its size when it is a plain file, in a ``blobs/`` that
        resolves inside the cache: where a snapshot link's first hop leads, resolved with one
        ``lstat``.  A ``realpath`` per file cost one per directory of the path, most of a
        revision's first read.  None (a blob that is itself a link, or missing) leaves the
        file to the general check."""
        blobs = self._blobs_resolved
        if blobs is None:
            return None
        try:
            info = os.lstat(os.path.join(str(blobs), name))
        except OSError:
            return None
        # A child of a parsed path: parsing the whole path again, per file, cost more.
        return (blobs / name, info.st_size) if stat.S_ISREG(info.st_mode) else None

    @functools.cached_property
    def _blobs_resolved(self) -> Path | None:
        """The real path of this repo's ``blobs/``, once per view; None outside the cache."""
        real = Path(os.path.realpath(self.folder / "blobs"))
        return real if real.is_relative_to(self.root) else None

    def _blob_name(self, link: str) -> str | None:
        """The etag a snapshot link names: its first hop must be ``blobs/<sha>`` of this repo.

        Judging by the name, not the content, is what the client does too, and it keeps
        a HEAD on a 50 GB file cheap. ``.incomplete`` files never match the pattern.
        """
        try:
            hop = os.path.normpath(os.path.join(os.path.dirname(link), os.readlink(link)))
        except OSError:  # removed since it was listed
            return None
        folder, name = os.path.split(hop)
        if folder != self._blobs_named:
            return None
        return name if HashKind.of_blob_name(name) is not None else None


def open_repo(root: Path, repo_id: str) -> RepoView | None:
    """The repo ``repo_id`` names in the cache at ``root``, or None when it holds none.

    Only ids the Hub itself accepts: ``--`` is the separator of the folder's name, so an id
    containing it would name another repo's folder.
    """
    try:
        validate_repo_id(repo_id)
        folder = layout.repo_folder(root, repo_id)
    except ValueError:
        return None
    if not (folder / "snapshots").is_dir() or not _within(folder, root):
        return None
    return RepoView(root, repo_id, folder)


@functools.lru_cache(maxsize=REVISION_CACHE_SIZE)
def _read_settled(root: Path, repo_id: str, folder: Path, commit: str, stamp: Stamp) -> Revision:
    """A revision read once per stamp: the stamp is part of the key, so a change reads anew
    and the stale entry ages out of the LRU."""
    return RepoView(root, repo_id, folder)._read(commit, stamp)


def _stamp(snapshot: Path, blobs: Path) -> Stamp:
    """One ``stat`` per directory and per plain copy, none per link (raises when gone)."""
    directories: list[tuple[str, int, int]] = []
    copies: list[tuple[str, int, int, int]] = []
    for name, where in (("", snapshot), ("blobs/", blobs)):
        info = where.stat()
        directories.append((name, info.st_ino, info.st_mtime_ns))
    pending = [("", snapshot)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.is_symlink():
                    continue
                info = entry.stat(follow_symlinks=False)
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    directories.append((rel + "/", info.st_ino, info.st_mtime_ns))
                    pending.append((rel + "/", Path(entry.path)))
                else:
                    copies.append((rel, info.st_ino, info.st_size, info.st_mtime_ns))
    return Stamp(tuple(sorted(directories)), tuple(sorted(copies)))


def _within(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves inside ``root`` (itself resolved), as ``realpath`` says.

    The paths asked about are ``root`` joined with names from a request (repo folder, ref,
    snapshot), so only the components below ``root`` can lead out, and only when one is a
    link: each is ``lstat``-ed, and the whole path is resolved only when one is.  ``realpath``
    resolves every component from ``/``; three per lookup were nearly a third of the work this
    module does for a lookup answered before.
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ("..",)  # not below root by its name: only resolving it can tell
    if ".." in parts:
        return Path(os.path.realpath(path)).is_relative_to(root)
    current = str(root)
    for part in parts:
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return True  # nothing below a missing component: as realpath, it stays by name
        if stat.S_ISLNK(mode):
            return Path(os.path.realpath(path)).is_relative_to(root)
    return True


def _walk(directory: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Non-directory entries below ``directory``, sorted; directory symlinks are not followed."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if TEMP_NAME_RE.fullmatch(entry.name):
            continue  # a file or link being written, renamed into place when complete
        rel = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, rel + "/")
        else:
            yield rel, entry.path


@functools.lru_cache(maxsize=4096)
def _hash_copy(path: str, size: int, mtime_ns: int, inode: int, lfs: bool) -> str:
    """Etag of a copied snapshot file; keyed by stat so an edited file is hashed again."""
    return digest_file(path, HashKind.SHA256 if lfs else HashKind.GIT_BLOB_SHA1)

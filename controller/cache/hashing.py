"""Content digests of cache blobs, in the two forms a Hugging Face etag takes.

A blob in the HF cache is named after its etag: the sha256 of the content for LFS files
(64 hex digits), the git blob sha1 for small files kept in git (40 hex digits).  Checking
a blob therefore means computing whichever digest its name implies.

Files are read with ``readinto`` into one large reused buffer, so hashing a 20 GB shard
allocates nothing per chunk, and each ``update`` hands hashlib a multi-megabyte slice: for
updates that large hashlib releases the GIL, so several files hash in parallel on threads.

Hashing a 50 GB shard takes tens of seconds, so a stop request is asked between chunks:
shutting down never waits for a whole file, and a hash cut short raises
:class:`~controller.system.cancel.Cancelled` instead of returning a digest of part of the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from controller.domain import COMMIT_RE, SHA256_RE
from controller.system.cancel import Cancelled

# Large enough that per-call overhead vanishes and hashlib releases the GIL for each update;
# small enough that a pool of hashing threads stays within a modest memory budget.
CHUNK_SIZE = 8 * 1024 * 1024


class HashKind(str, Enum):
    SHA256 = "sha256"  # LFS files: etag is the sha256 of the content
    GIT_BLOB_SHA1 = "git-blob-sha1"  # files in git: etag is sha1(b"blob <size>\0" + content)

    @classmethod
    def of_blob_name(cls, name: str) -> HashKind | None:
        """The digest kind a blob's file name in the cache is written in (lower-case hex, as
        huggingface_hub names blobs); None for any other name, such as an ``.incomplete``
        download.  A git blob sha1 has the shape of a commit id: 40 hex digits."""
        if SHA256_RE.match(name):
            return cls.SHA256
        if COMMIT_RE.match(name):
            return cls.GIT_BLOB_SHA1
        return None

    @classmethod
    def for_etag(cls, etag: str) -> HashKind:
        """The digest kind an etag names; ``ValueError`` for anything else."""
        kind = cls.of_blob_name(etag.lower())
        if kind is None:
            raise ValueError(f"etag {etag!r} is neither a sha256 nor a git blob sha1")
        return kind


class HashSizeError(ValueError):
    """The bytes hashed differ from the size declared up front."""


class BlobHasher:
    """Incremental digest of one blob, e.g. fed chunk by chunk while it downloads.

    ``size`` is required for git blob ids, whose header carries the length before the
    content.  When a size is declared, the digest is only defined once exactly that many
    bytes were fed: :meth:`hexdigest` raises :class:`HashSizeError` otherwise and
    :meth:`matches` says no, so a truncated or overlong transfer never passes as intact.
    """

    def __init__(self, kind: HashKind, size: int | None = None) -> None:
        if size is not None and size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        self.kind = kind
        self.size = size
        self._seen = 0
        if kind is HashKind.SHA256:
            self._hash = hashlib.sha256()
        else:
            if size is None:
                raise ValueError("a git blob sha1 needs the blob size up front")
            # An identifier, not a security check: allowed even where FIPS forbids sha1.
            self._hash = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)

    @classmethod
    def for_etag(cls, etag: str, size: int | None = None) -> BlobHasher:
        return cls(HashKind.for_etag(etag), size)

    @property
    def bytes_seen(self) -> int:
        return self._seen

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self._seen += len(data) if not isinstance(data, memoryview) else data.nbytes

    def hexdigest(self) -> str:
        if self.size is not None and self._seen != self.size:
            raise HashSizeError(f"hashed {self._seen} bytes, expected {self.size}")
        return self._hash.hexdigest()

    def matches(self, etag: str) -> bool:
        """Whether the content fed so far is exactly the blob ``etag`` names."""
        if self.size is not None and self._seen != self.size:
            return False
        return self._hash.hexdigest() == etag.lower()


def feed_from(
    fd: int,
    hasher: BlobHasher,
    *,
    limit: int | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Hash what ``fd`` holds from its current position, up to ``limit`` bytes or the end.

    Returns the bytes fed, leaving ``fd`` positioned after them.  ``stop`` is asked before
    each chunk; once it says so, :class:`~controller.system.cancel.Cancelled` is raised and
    ``hasher`` has seen only a prefix, so its digest must not be trusted.
    """
    # One buffer, reused for every read, and no larger than what there is to read: a cache
    # of many small files would otherwise zero-fill a whole chunk per file.
    size = max(1, min(CHUNK_SIZE, os.fstat(fd).st_size if limit is None else limit))
    buffer = memoryview(bytearray(size))
    whole = [buffer]  # readv's list, built once: a full-buffer read allocates nothing
    fed = 0
    while limit is None or fed < limit:
        if stop is not None and stop():
            raise Cancelled(f"hashing stopped after {fed} bytes")
        left = size if limit is None else limit - fed
        n = os.readv(fd, whole if left >= size else [buffer[:left]])
        if n == 0:
            break
        hasher.update(buffer[:n])
        fed += n
    return fed


def digest_bytes(data: bytes, kind: HashKind) -> str:
    """The etag of content held in memory: its sha256, or its git blob sha1."""
    hasher = BlobHasher(kind, len(data))
    hasher.update(data)
    return hasher.hexdigest()


def digest_file(
    path: str | os.PathLike[str], kind: HashKind, stop: Callable[[], bool] | None = None
) -> str:
    """The etag of a file's content in the form ``kind``, read in chunks (any size)."""
    with open(path, "rb", buffering=0) as f:
        # fstat of the open file, not a stat of the path: it is the file we are reading.
        size = os.fstat(f.fileno()).st_size if kind is HashKind.GIT_BLOB_SHA1 else None
        hasher = BlobHasher(kind, size)
        feed_from(f.fileno(), hasher, stop=stop)
    try:
        return hasher.hexdigest()
    except HashSizeError as e:
        # The file grew or shrank under us; the digest would describe neither version.
        raise HashSizeError(f"{Path(path)} changed while it was hashed: {e}") from e


def sha256_file(path: str | os.PathLike[str]) -> str:
    return digest_file(path, HashKind.SHA256)


def git_blob_sha1_file(path: str | os.PathLike[str]) -> str:
    """The id ``git hash-object`` gives the file: sha1 of ``blob <size>\\0`` + content."""
    return digest_file(path, HashKind.GIT_BLOB_SHA1)


def digest_for_etag(
    path: str | os.PathLike[str], etag: str, *, stop: Callable[[], bool] | None = None
) -> str:
    """The digest of ``path`` in the form ``etag`` is written in, to compare against it.

    ``stop`` is asked between chunks (:class:`~controller.system.cancel.Cancelled` once it says so).
    """
    return digest_file(path, HashKind.for_etag(etag), stop)


def check_blob(
    path: str | os.PathLike[str], etag: str, *, stop: Callable[[], bool] | None = None
) -> tuple[bool, str]:
    """Whether ``path`` holds exactly the blob ``etag`` names, and the digest found.

    A stop between chunks raises :class:`~controller.system.cancel.Cancelled`: no verdict at all,
    never a mismatch for a file that was only partly read.
    """
    digest = digest_for_etag(path, etag, stop=stop)
    return digest == etag.lower(), digest

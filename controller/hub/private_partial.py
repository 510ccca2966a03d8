"""``blobs/<etag>.<random>.incomplete``: one writer's own partial of a small blob.

A large blob has one stable partial that any later process resumes (:mod:`controller.hub.partial`),
and so needs a sidecar, synced records and a claim that holds across the nodes of a shared
file system (:mod:`controller.cache.partial_claim`).  For a small blob that bookkeeping costs
more than fetching the blob again: a handful of fsyncs, a claim file and its heartbeat thread
per file, against a few milliseconds of transfer.  So a small blob is written the way
huggingface_hub writes every blob: into a partial whose name no other writer can pick (random,
as huggingface_hub's ``<etag>.<uuid8>.incomplete``, so readers of the cache already take it for
a download in progress that cannot be resumed), hashed on its way to disk, synced, and renamed
onto its blob name once its digest matches.  Two writers on two nodes never share a byte; if
both finish, both rename identical, verified content onto the same name, which is harmless.
A writer killed midway leaves its partial behind, as huggingface_hub does; the next writer
starts from byte 0, which for a small blob is cheaper than what resuming would cost, and
removes the partials of the blob that no live writer can still be filling
(:func:`remove_stale`).  Within one writer, a connection cut midway is continued from the bytes
on disk, as for any blob.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import uuid
from pathlib import Path

from controller.cache.hashing import BlobHasher
from controller.domain import Reason
from controller.hub.revisions import HubError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# A live writer touches its partial with every read of the body (the speed floor cuts a body
# slower than 1 kB/s) and, between two attempts, waits a read timeout and a retry delay at
# most: minutes.  A partial untouched for an hour has no live writer, on this node or on any
# other sharing the cache: the age is the file system's own mtime, and at this bound clocks
# that differ by minutes do not matter.  Host and pid in the name would tell sooner on one
# host, but pids repeat across the containers that share a cache volume, and
# huggingface_hub's leftovers, named alike, carry neither.
STALE_AFTER_SECONDS = 3600.0
RELIST_AFTER_SECONDS = 600.0


class PrivatePartial:
    """The partial of ``etag`` (``size`` bytes) being written by this writer alone."""

    def __init__(self, blob: Path, etag: str, size: int, where: str) -> None:
        self.path = blob.with_name(f"{etag}.{uuid.uuid4().hex[:8]}.incomplete")
        self.total = size
        self.where = where
        self.size = 0
        self._validator: str | None = None
        self._etag = etag
        self._hasher = BlobHasher.for_etag(etag, size)
        # O_EXCL: a name taken (however unlikely) is never written through; O_NOFOLLOW: a
        # link planted in blobs/ must not redirect the writes.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)

    def write(self, data: memoryview) -> None:
        if self.size + len(data) > self.total:
            raise HubError(
                Reason.SIZE_MISMATCH,
                f"{self.where}: the hub sent more than the {self.total} bytes it announced; "
                "the download was discarded",
                transient=False,
            )
        view = data
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as e:
                raise self._write_error(e) from None
            self._hasher.update(view[:written])  # exactly what reached the file
            self.size += written
            view = view[written:]

    @property
    def validator(self) -> str | None:
        return self._validator

    def remember_validator(self, etag_header: str | None) -> None:
        """Keep the GET's own strong ETag for ``If-Range``, should the connection be cut."""
        value = etag_header.strip() if etag_header else None
        self._validator = None if value is None or value.startswith("W/") else value

    def restart(self) -> None:
        """Forget every byte: the next attempt sends the whole file again."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hasher = BlobHasher.for_etag(self._etag, self.total)
        self.size = 0
        self._validator = None

    def digest(self) -> str:
        return self._hasher.hexdigest()

    def publish(self, blob: Path) -> None:
        """Sync the verified bytes, then rename them onto ``blob``: a power loss after the
        rename can lose the rename, never leave a right-sized blob with wrong bytes.  The
        directory is synced once per snapshot, before its ref names it
        (:func:`controller.cache.layout.write_ref`), not once per blob."""
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise self._write_error(e) from None
        self._close()
        os.replace(self.path, blob)

    def discard(self) -> None:
        """Remove the partial (nothing once it was published)."""
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write_error(self, e: OSError) -> HubError:
        if e.errno in _DISK_FULL:
            return HubError(
                Reason.DISK_FULL,
                f"{self.where}: the disk is full: {self.total} bytes needed in {self.path.parent}",
                transient=False,
            )
        return HubError(
            Reason.DOWNLOAD_FAILED,
            f"{self.where}: cannot write {self.path}: {e.strerror or e}",
            transient=False,
        )


def remove_stale(blob: Path, etag: str) -> int:
    """Remove the private partials of ``etag`` (``<etag>.<random>.incomplete`` next to
    ``blob``, huggingface_hub's included) that nothing wrote to for
    :data:`STALE_AFTER_SECONDS`; returns how many.  The stable partial
    ``<etag>.incomplete`` does not match."""
    removed = 0
    oldest_live = time.time() - STALE_AFTER_SECONDS
    prefix = f"{etag}."
    for name in _AGED.names(blob.parent, oldest_live):
        if not name.startswith(prefix):
            continue
        path = os.path.join(blob.parent, name)
        with contextlib.suppress(FileNotFoundError):
            # Asked again: a writer may have come back to it since the folder was listed.
            if os.lstat(path).st_mtime < oldest_live:
                os.unlink(path)
                removed += 1
    return removed


class _AgedPartials:
    """The private partials of each blobs/ folder that were already old when it was listed.

    A folder is listed again only after :data:`RELIST_AFTER_SECONDS`: listing it for each
    small file fetched made a repo of many files cost the square of their number.  A partial
    that ages after a listing waits for the next one; being stale, it can.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listed: dict[Path, tuple[float, tuple[str, ...]]] = {}

    def names(self, folder: Path, oldest_live: float) -> tuple[str, ...]:
        now = time.monotonic()
        with self._lock:
            listed = self._listed.get(folder)
        if listed is not None and now - listed[0] < RELIST_AFTER_SECONDS:
            return listed[1]
        names = _aged_partials(folder, oldest_live)
        with self._lock:
            self._listed[folder] = (now, names)
        return names


def _aged_partials(folder: Path, oldest_live: float) -> tuple[str, ...]:
    suffix = ".incomplete"
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return ()
    aged = []
    for entry in entries:
        name = entry.name
        # ``<etag>.<random>.incomplete``: two dots at least, and not the stable partial's one.
        if not name.endswith(suffix) or name.count(".") < 2:
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.stat(follow_symlinks=False).st_mtime < oldest_live:
                aged.append(name)
    return tuple(aged)


_AGED = _AgedPartials()

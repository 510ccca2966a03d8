"""``blobs/<etag>.incomplete``: the one stable partial file of a blob, and its running digest.

The file is filled in one of two layouts, which its sidecar (:mod:`controller.hub.sidecar`)
tells apart.  Grown in order by one connection, it is always a prefix of the blob, and its
length is what it holds.  Fetched as byte ranges over several connections, it is preallocated
to the blob's size (a full disk shows before the first byte, not at 90 %), written at offsets,
and the sidecar lists the spans written.  Either way the digest is computed exactly once per
byte: in order, from the buffer that was written (one connection, and the connection writing
at the hashed frontier of a ranged file), or from the page cache right behind the writers as
the contiguous prefix grows (ranges written ahead of it) -- never by reading the file again
after the download.  Writes bypass user-space buffering, so a ``kill -9`` loses nothing
that was written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from pathlib import Path

from controller.cache.hashing import BlobHasher, feed_from
from controller.domain import Reason
from controller.domain.units import human_bytes
from controller.hub import sidecar
from controller.hub.ranges import Span, Spans, added, covered, prefix_end
from controller.hub.revisions import HubError
from controller.hub.sidecar import Sidecar
from controller.system.atomic import fsync_dir
from controller.system.cancel import Cancelled, ModelStop

# Every write goes straight to the kernel, so a kill -9 loses nothing that was written; fsync
# bounds what a power loss can take.  In the ranged layout the syncs are made by the thread
# that hashes behind the writers (:meth:`Partial.sync_behind`), so the writers never wait for
# the disk, and the sync that publishes the blob finds at most this much left to write: the
# whole file flushed at the end was measured at a few tenths of a second of wall time per GiB,
# on top of the transfer.
FSYNC_EVERY = 64 * 1024 * 1024
# Bytes read back from the page cache per hash update in the ranged layout: large enough that
# hashlib releases the GIL and per-call costs vanish, small enough to stay in a core's cache.
HASH_READ = 1024 * 1024

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NO_FALLOCATE = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


class Partial:
    """The open partial of one blob; ``record`` is its sidecar as last written."""

    def __init__(self, path: Path, record: Sidecar) -> None:
        self.path = path
        self.sidecar = sidecar.path_for(path)
        self._records = sidecar.Records(self.sidecar)
        self.record = record
        self.size = 0  # grown in order: the bytes on disk and hashed
        self.resumed_from = 0  # bytes an earlier run left that were kept
        self.done: Spans = ()  # ranged: the spans written
        self.hashed = 0  # ranged: the hasher has seen bytes up to here
        self._hasher = BlobHasher.for_etag(record.etag, record.size)
        # Ranged: the writer at the hashed frontier and the thread reading the prefix back
        # both feed the hasher; this keeps their updates in file order.
        self._hashing = threading.Lock()
        self._unsynced = 0
        self._synced_at = 0  # ranged: the hashed prefix was this long at the last sync
        self._fd = -1

    @property
    def validator(self) -> str | None:
        return self.record.validator

    @property
    def total(self) -> int:
        return self.record.size

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, blob: Path, record: Sidecar, stop: ModelStop | None = None) -> Partial:
        """The partial grown in order, its prefix on disk hashed (``stop`` can cut that
        short, raising :class:`~controller.system.cancel.Cancelled`; the bytes stay)."""
        partial, found = cls._opened(blob, record)
        try:
            if found is None:
                partial._start_over()
                return partial
            partial.record = found
            prefix = os.fstat(partial._fd).st_size
            if found.done is not None:
                prefix = min(prefix, prefix_end(found.done))
                partial._collapse(prefix)
            partial._hash_prefix(prefix, stop)
        except BaseException:
            partial.close()
            raise
        return partial

    @classmethod
    def open_ranged(cls, blob: Path, record: Sidecar) -> Partial:
        """The partial laid out for byte ranges: preallocated, with the spans it holds."""
        # A new partial's first record already says it holds no span.
        partial, found = cls._opened(blob, record.with_done(()))
        try:
            if found is None:
                partial._start_over()
            elif found.done is None:  # grown in order so far: its length is its prefix
                length = min(os.fstat(partial._fd).st_size, found.size)
                partial.record = found.with_done((Span(0, length),) if length else ())
                # The spans go on record before the file is stretched to its full size: a
                # partial of full length is never taken for a prefix that long.
                partial._records.replace(partial.record, durable=True)
            else:
                partial.record = found
            partial.done = partial.record.done or ()
            partial.resumed_from = covered(partial.done)
            partial._preallocate()
        except BaseException:
            partial.close()
            raise
        return partial

    @classmethod
    def _opened(cls, blob: Path, record: Sidecar) -> tuple[Partial, Sidecar | None]:
        """The partial's file, open, and its sidecar if it can be continued."""
        path = blob.with_name(blob.name + ".incomplete")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = cls(path, record)
        # O_NOFOLLOW: a link planted in blobs/ must not redirect our writes elsewhere.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        found = partial._resumable()
        if found is None:
            # The sidecar goes first: a partial on disk is only ever continued when a sidecar
            # says which blob it is part of.
            partial._records.replace(record, durable=True)
        partial._fd = os.open(path, flags, 0o666)
        return partial, found

    def _resumable(self) -> Sidecar | None:
        found = sidecar.read(self.sidecar)
        if found is None or not found.describes(self.record.etag, self.record.size):
            return None
        return found

    def _start_over(self) -> None:
        os.ftruncate(self._fd, 0)

    def _collapse(self, prefix: int) -> None:
        """From the ranged layout to one grown in order, keeping the contiguous prefix: each
        step leaves a sidecar that describes the file, wherever a kill lands."""
        self.record = self.record.with_done((Span(0, prefix),) if prefix else ())
        self._records.replace(self.record, durable=True)
        os.ftruncate(self._fd, prefix)
        self.record = self.record.with_done(None)
        self._records.replace(self.record, durable=True)

    def _hash_prefix(self, size: int, stop: ModelStop | None) -> None:
        """Feed the bytes already on disk to the hasher, leaving the file positioned after
        them.  A prefix of tens of GB takes a while: a stop ends it between chunks, leaving
        the file untouched for the next attempt to hash again."""
        if size > self.total:  # cannot be a prefix of this blob: start over
            os.ftruncate(self._fd, 0)
            return
        requested = stop.requested if stop is not None else None
        os.lseek(self._fd, 0, os.SEEK_SET)
        # Fewer bytes than ``size`` when the file shrank under us: what was read is the prefix.
        position = feed_from(self._fd, self._hasher, limit=size, stop=requested)
        os.ftruncate(self._fd, position)
        self.size = self.resumed_from = position

    def _preallocate(self) -> None:
        try:
            os.posix_fallocate(self._fd, 0, self.total)
        except OSError as e:
            if e.errno not in _NO_FALLOCATE:
                raise self._write_error(e, self.total - covered(self.done)) from None
            os.ftruncate(self._fd, self.total)  # a file system without it: a sparse file

    # ----------------------------------------------------------------- grown in order

    def remember_validator(self, etag_header: str | None) -> None:
        """Keep the GET's own strong ETag for ``If-Range`` when this partial is continued."""
        value = etag_header.strip() if etag_header else None
        if value and value.startswith("W/"):
            value = None  # weak validators are not allowed in If-Range
        if value != self.record.validator:
            self.record = self.record.with_validator(value)
            self._records.replace(self.record, durable=True)

    def write(self, data: bytes | memoryview) -> None:
        if self.size + len(data) > self.total:
            self.discard()
            raise self.overlong()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as e:
                raise self._write_error(e, self.total - self.size) from None
            # Hash exactly what reached the file, so size and digest never disagree.
            self._hasher.update(view[:written])
            self.size += written
            self._unsynced += written
            view = view[written:]
        if self._unsynced >= FSYNC_EVERY:
            self._sync()

    def overlong(self) -> HubError:
        return HubError(
            Reason.SIZE_MISMATCH,
            f"{self.record.path}: the hub sent more than the {self.total} bytes it "
            "announced; the download was discarded",
            transient=False,
        )

    def restart(self) -> None:
        """Forget every byte: the server sends the whole file next."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hasher = BlobHasher.for_etag(self.record.etag, self.total)
        self.size = self.resumed_from = self._unsynced = self.hashed = self._synced_at = 0
        self.done = ()
        if self.record.validator is not None or self.record.done is not None:
            self.record = self.record.with_validator(None).with_done(None)
            self._records.replace(self.record, durable=True)

    # ----------------------------------------------------------------- byte ranges

    def write_at(self, offset: int, data: memoryview) -> None:
        """Write ``data`` at ``offset`` (ranged layout); the caller records the span."""
        while data:
            try:
                written = os.pwrite(self._fd, data, offset)
            except OSError as e:
                raise self._write_error(e, self.total - covered(self.done)) from None
            offset += written
            data = data[written:]

    def mark_done(self, span: Span) -> None:
        self.done = added(self.done, span)

    def save(self) -> None:
        """Put the spans written so far on record (in place, not synced: see the sidecar)."""
        self.record = self.record.with_done(self.done)
        self._records.progress(self.record)

    def hash_written(self, offset: int, data: memoryview) -> bool:
        """Feed the hasher ``data``, just written at ``offset``, if the hasher stands exactly
        there: the bytes at the frontier are hashed from the writer's buffer, not read back.
        False when it does not (the bytes are read back from the page cache later) or when
        the reading thread holds the hasher (the writer does not wait for it)."""
        if self.hashed != offset or not self._hashing.acquire(blocking=False):
            return False
        try:
            if self.hashed != offset:
                return False
            self._hasher.update(data)
            self.hashed += len(data)
            return True
        finally:
            self._hashing.release()

    def hash_through(self, end: int, buffer: memoryview, stop: ModelStop | None = None) -> None:
        """Feed the hasher the bytes from where it stands up to ``end``, read back from the
        page cache the writers just filled (those the writer at the frontier has not hashed
        from its own buffer meanwhile)."""
        while self.hashed < end:
            if stop is not None and stop.requested():
                raise Cancelled(f"hashing stopped after {self.hashed} bytes")
            with self._hashing:
                at = self.hashed
                if at >= end:
                    return
                want = min(len(buffer), end - at)
                n = os.preadv(self._fd, [buffer[:want]], at)
                if n == 0:
                    raise HubError(
                        Reason.DOWNLOAD_FAILED,
                        f"{self.path} is shorter than the {end} bytes written to it",
                        transient=True,
                    )
                self._hasher.update(buffer[:n])
                self.hashed = at + n

    def sync_behind(self) -> None:
        """Sync the ranged partial once :data:`FSYNC_EVERY` more bytes were hashed: called by
        the thread that hashes them, while the writers go on."""
        if self.hashed - self._synced_at < FSYNC_EVERY:
            return
        hashed = self.hashed
        self._sync()
        self._synced_at = hashed

    def ranges_complete(self) -> None:
        """Every byte is written and hashed: the file is now simply the whole blob."""
        self.size = self.hashed

    def to_in_order(self) -> None:
        """Fall back to growing the file in order from its contiguous prefix, which the
        hasher catches up with (each byte still hashed once)."""
        prefix = prefix_end(self.done)
        self._collapse(prefix)
        self.hash_through(prefix, memoryview(bytearray(HASH_READ)))
        os.lseek(self._fd, prefix, os.SEEK_SET)
        self.size = prefix
        self.resumed_from = min(self.resumed_from, prefix)
        self.done = ()

    # ----------------------------------------------------------------- the end

    def digest(self) -> str:
        return self._hasher.hexdigest()

    def publish(self, blob: Path) -> None:
        """Move the verified file to its blob name, durably."""
        self._sync()
        self.close()
        os.replace(self.path, blob)
        with contextlib.suppress(FileNotFoundError):
            self.sidecar.unlink()
        fsync_dir(blob.parent)

    def discard(self) -> None:
        """The bytes are wrong: remove them, and the sidecar that would have them resumed."""
        self.close()
        for path in (self.path, self.sidecar):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        self._records.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise self._write_error(e, 0) from None
        self._unsynced = 0

    def _write_error(self, e: OSError, remaining: int) -> HubError:
        if e.errno in _DISK_FULL:
            free = _free_bytes(self.path.parent)
            kept = self.size or covered(self.done)
            return HubError(
                Reason.DISK_FULL,
                f"{self.record.path}: the disk is full: {human_bytes(remaining)} "
                f"({remaining} bytes) more needed in {self.path.parent}, "
                f"{human_bytes(free)} free; the {human_bytes(kept)} downloaded so far "
                "are kept and the download resumes once there is room",
                transient=False,
            )
        return HubError(
            Reason.DOWNLOAD_FAILED,
            f"{self.record.path}: cannot write {self.path}: {e.strerror or e}",
            transient=False,
        )


def _free_bytes(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0

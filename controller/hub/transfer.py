"""Resumable, verified download of one file into the Hugging Face cache layout.

huggingface_hub never hashes what it downloads, and it writes to a process-unique
``<etag>.<uuid8>.incomplete`` that it deletes in ``finally``: a download killed by ``kill -9``
starts over from byte 0 in the next process (HF_HUB_FACTS §1.2).  This module keeps the
cache layout and what huggingface_hub sends and reads (its ``/resolve`` URL, its headers, so
endpoint, auth and user agent are exactly hf's; its HEAD's reading of redirects, ETags and
sizes; its reading of error answers), sent through :mod:`controller.hub.wire` rather than its
httpx session, and changes three things:

* the partial file has a **stable** name, ``blobs/<etag>.incomplete``, next to a small
  sidecar ``blobs/<etag>.incomplete.json`` saying what it is part of and what it holds
  (:mod:`controller.hub.partial`); the next process finds both and continues with a
  ``Range`` -- a large file as several ranges at once (:mod:`controller.hub.ranged`);
* every byte is hashed on its way to disk (the prefix of a resumed partial is hashed once,
  on open), and the blob is published only if size and digest match its etag -- so the
  caller gets a verified digest without reading the file a second time;
* network faults are retried with exponential backoff and full jitter, a retry after a
  partial body continues where the bytes on disk end, and every request has a timeout;
* a small file (:data:`WHOLE_FILE_AT_MOST`) is fetched by its GET alone, into a partial of
  this writer's own (:mod:`controller.hub.private_partial`): what huggingface_hub's HEAD
  checks -- ``X-Repo-Commit``, the etag, the size, from the redirect when the hub sends the
  file to a CDN -- is checked on the GET's answers before a byte is kept.

Writers of the same blob exclude each other through huggingface_hub's own per-blob lock
(``<cache>/.locks/models--org--name/<etag>.lock``), so an application calling
``hf_hub_download`` and modelsync never write the same blob at once.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timezone
from email.message import Message
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, urljoin

import httpx2

from controller.cache import layout, partial_claim
from controller.cache.blob_lock import blob_lock
from controller.cache.hashing import HashKind
from controller.domain import Reason
from controller.hub import ranged, revisions, wire
from controller.hub.connections import SHARED, ConnectionBudget
from controller.hub.partial import Partial
from controller.hub.private_partial import PrivatePartial, remove_stale
from controller.hub.ranged import RangedDownload, RangeSource, RangesRefused
from controller.hub.ranges import content_range
from controller.hub.retry import DEFAULT_RETRY, Attempts, RetryPolicy
from controller.hub.revisions import HubError
from controller.hub.sidecar import Sidecar
from controller.hub.watchdog import DEFAULT_FLOOR, SpeedFloor, Watchdog
from controller.system.atomic import atomic_symlink
from controller.system.cancel import ModelStop
from controller.system.clock import utcnow

__all__ = ["DEFAULT_RETRY", "Fetched", "FileRef", "RetryPolicy", "Timeouts", "TokenBucket", "fetch"]

log = logging.getLogger("modelsync.transfer")

# The most one read takes from the socket into a connection's reused buffer, and so the most
# written and hashed at once: each byte is copied from the kernel, then hashed and copied to
# the page cache from the same buffer.  256 KiB stays in a core's L2 cache between the three
# (measured on 4 x 256 MiB over loopback: clearly less CPU than 1 MiB or 4 MiB reads),
# is far above the size where hashlib releases the GIL, and is the most a kill can leave
# in flight beyond what is on disk.
CHUNK_SIZE = 256 * 1024
# Progress is reported after at least this many new bytes, not per transport chunk (~64 KiB):
# at 1 GB/s that is a thousand calls a second instead of sixteen thousand.
PROGRESS_EVERY = 1024 * 1024
# A file at most this large, whose etag and size the plan knows, is fetched whole into a
# writer's own partial (controller.hub.private_partial) by one GET, without the HEAD, the
# stable partial's sidecar or its cross-node claim: that bookkeeping costs a request, a claim
# file with its heartbeat thread and about six fsyncs per file (measured: most of the time of a
# first apply of 200 models of 1 MiB), while fetching such a file again from byte 0 after a
# kill takes about a tenth of a second at the ~40 MB/s one connection to the hub gets.
WHOLE_FILE_AT_MOST = 4 * 1024 * 1024
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# What a step of a download retries (when the error it maps to is transient).
_RETRIED = (HubError, httpx2.HTTPError, wire.WireError, OSError)

# Told (bytes of the file on disk, its size) as a download advances, including the prefix of
# a resumed partial; a restarted download goes back to 0.
Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Timeouts:
    """Per-request limits: huggingface_hub's session has none, and a stalled mirror must
    fail the attempt (to be retried) rather than hang the controller."""

    connect: float = 10.0
    read: float = 30.0  # longest silence between two reads of an answer


class TokenBucket:
    """A bandwidth limit shared by every download thread, in bytes per second.

    Each thread takes tokens for the bytes it just received and sleeps off any debt, which
    slows its next read and so, through TCP flow control, the sender.  The bucket starts
    empty and holds at most ``burst`` tokens, so the limit holds from the first byte and an
    idle pause does not turn into a large burst.
    """

    def __init__(self, rate: int, *, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"a bandwidth limit must be positive, got {rate}")
        self.rate = rate
        self.burst = max(1, burst if burst is not None else rate // 10)
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, count: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # Going into debt reserves these bytes' share of time; later callers queue behind.
            self._tokens -= count
            debt = -self._tokens
        if debt > 0:
            time.sleep(debt / self.rate)

    def chunk_size(self) -> int:
        """Reads small enough that the limit is smooth rather than bursty."""
        return min(CHUNK_SIZE, max(16 * 1024, self.rate // 8))


DEFAULT_TIMEOUTS = Timeouts()


# --------------------------------------------------------------------------- the API


@dataclass(frozen=True)
class FileRef:
    """One file of one commit.  ``etag`` and ``size`` are what the caller expects (the plan
    knows both); the hub's HEAD must agree, and a known etag lets an already cached blob be
    linked without any request."""

    repo: str
    path: str
    commit: str
    etag: str | None = None
    size: int | None = None

    @property
    def where(self) -> str:
        return f"{self.repo}@{self.commit[:12]}:{self.path}"


@dataclass(frozen=True)
class Fetched:
    snapshot: Path  # snapshots/<commit>/<path>, a relative link to the blob
    blob: Path
    etag: str
    digest: str | None  # verified digest of the bytes written; None: the blob was only linked
    transferred: int  # body bytes received by this call
    resumed_from: int  # bytes of an earlier partial that were kept


def fetch(
    ref: FileRef,
    *,
    cache_dir: Path,
    endpoint: str,
    token: str | bool | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    limiter: TokenBucket | None = None,
    progress: Progress | None = None,
    stop: ModelStop | None = None,
    offline: bool = False,
    speed_floor: SpeedFloor = DEFAULT_FLOOR,
    connections_per_file: int = 1,
    connection_budget: ConnectionBudget | None = None,
    private_small_files: bool = False,
) -> Fetched:
    """Put ``ref`` into the cache, verified, and link it into its snapshot.

    Raises :class:`~controller.hub.revisions.HubError` (``transient`` tells whether a later run may
    succeed) and :class:`~controller.cache.layout.UnsafePathError`.  ``token`` is passed to
    huggingface_hub as is: ``None`` means its usual look-up (``HF_TOKEN``, the login).
    ``stop`` ends the download between two chunks with :class:`~controller.system.cancel.Cancelled`,
    keeping the partial file for the next attempt.  ``offline`` links a cached blob and
    sends no request: a file that needs one fails (``HUB_UNREACHABLE``), its partial kept.
    A body slower than ``speed_floor`` over its window is cut and resumed over a new
    connection (:mod:`controller.hub.watchdog`).  A file larger than
    :data:`~controller.hub.ranged.RANGED_ABOVE` is fetched as byte ranges over up to
    ``connections_per_file`` connections, the extra ones taken from ``connection_budget``
    (the process's :data:`~controller.hub.connections.SHARED` budget by default) while it
    has room (:mod:`controller.hub.ranged`).  ``private_small_files`` fetches a file of at most
    :data:`WHOLE_FILE_AT_MOST` whole into this writer's own partial (the etag and size must be
    known); it is off where others read the stable partial as it grows (a mirror streams it
    to its clients).
    """
    if stop is not None:
        stop.check()
    layout.check_relative(ref.path)
    snapshot = layout.snapshot_path(cache_dir, ref.repo, ref.commit, ref.path)
    try:
        if ref.etag is not None:
            # The plan's etag names the blob: when it is cached, no request is needed at all.
            blob = layout.blob_path(cache_dir, ref.repo, ref.etag)
            if blob.is_file():
                with blob_lock(cache_dir, ref.repo, ref.etag):
                    _link(snapshot, blob)
                if progress is not None and ref.size is not None:
                    progress(ref.size, ref.size)
                return Fetched(snapshot, blob, ref.etag, None, 0, 0)
        if offline:
            raise HubError(
                Reason.HUB_UNREACHABLE,
                f"offline: {ref.repo}@{ref.commit[:12]}:{ref.path} is not in the cache; "
                "it is fetched once modelsync runs without --offline",
                transient=True,
            )
        job = _Job(
            ref, cache_dir, endpoint, token, retry, timeouts, limiter, progress, stop, speed_floor
        )
        job.connections = max(1, connections_per_file)
        job.budget = connection_budget or SHARED
        job.private_small_files = private_small_files
        return job.run(snapshot)
    except OSError as e:  # the lock, a directory, the link: the cache cannot be written
        raise _as_hub_error(e, ref, endpoint) from None


# --------------------------------------------------------------------------- one download


@dataclass(frozen=True)
class _Target:
    """What the HEAD said, checked: where to GET, the blob name, its size."""

    url: str
    etag: str
    size: int
    keep_auth: bool  # False when the GET goes to another origin (a CDN): no token there


class _Job:
    def __init__(
        self,
        ref: FileRef,
        cache_dir: Path,
        endpoint: str,
        token: str | bool | None,
        retry: RetryPolicy,
        timeouts: Timeouts,
        limiter: TokenBucket | None,
        progress: Progress | None = None,
        stop: ModelStop | None = None,
        speed_floor: SpeedFloor = DEFAULT_FLOOR,
    ) -> None:
        self.ref = ref
        self.cache_dir = cache_dir
        self.endpoint = endpoint
        self.token = token
        self.timeouts = timeouts
        self.limiter = limiter
        self.progress = progress
        self.stop = stop
        self.speed_floor = speed_floor
        self.retry = retry
        self.attempts = Attempts(retry, stop)
        self.connections = 1
        self.budget = SHARED
        self.private_small_files = False
        self.transferred = 0
        self._reported = -1  # bytes on disk at the last progress report

    def run(self, snapshot: Path) -> Fetched:
        ref = self.ref
        if ref.etag is not None and ref.size is not None and self._small(ref.size):
            return self._run_whole(snapshot, ref.etag, ref.size)
        target = self.attempts.until_done(self._head, self._error, _RETRIED)
        blob = layout.blob_path(self.cache_dir, self.ref.repo, target.etag)
        layout.prepare_repo_folder(self.cache_dir, self.ref.repo)  # `hf cache ls` sees it
        # The flock orders writers on this node; the partial's claim, writers on other nodes
        # of a shared file system, where an flock may not reach (controller.cache.partial_claim).
        with (
            blob_lock(self.cache_dir, self.ref.repo, target.etag),
            partial_claim.writing(self.cache_dir, self.ref.repo, target.etag, self.stop),
        ):
            if blob.is_file():  # another process finished it while we waited for the lock
                _link(snapshot, blob)
                self._report(target.size, target.size, force=True)
                return Fetched(snapshot, blob, target.etag, None, 0, 0)
            digest, resumed_from = self._download(target, blob)
            _link(snapshot, blob)
        return Fetched(snapshot, blob, target.etag, digest, self.transferred, resumed_from)

    def _small(self, size: int) -> bool:
        """Fetched whole: small, and not a file to fetch as byte ranges."""
        ranges = self.connections > 1 and size > ranged.RANGED_ABOVE
        return self.private_small_files and size <= WHOLE_FILE_AT_MOST and not ranges

    def _run_whole(self, snapshot: Path, etag: str, size: int) -> Fetched:
        """A small file: one GET into this writer's own partial (see WHOLE_FILE_AT_MOST)."""
        revisions.refuse_offline()  # as huggingface_hub refuses the HEAD this skips
        blob = layout.blob_path(self.cache_dir, self.ref.repo, etag)
        layout.prepare_repo_folder(self.cache_dir, self.ref.repo)  # `hf cache ls` sees it
        # The flock still orders writers on this node, huggingface_hub's included; writers on
        # other nodes each write their own partial and publish the same verified bytes.
        with blob_lock(self.cache_dir, self.ref.repo, etag):
            # Writers killed midway leave their partials behind; nothing else removes them.
            if removed := remove_stale(blob, etag):
                log.info("%s: removed %d stale partial download(s)", self.ref.where, removed)
            if blob.is_file():  # another process finished it while we waited for the lock
                _link(snapshot, blob)
                self._report(size, size, force=True)
                return Fetched(snapshot, blob, etag, None, 0, 0)
            url = hf_url(self.ref, self.endpoint)
            target = _Target(url, etag, size, keep_auth=True)
            partial = PrivatePartial(blob, etag, size, self.ref.where)
            self._report(0, size, force=True)
            try:
                self.attempts.until_done(
                    lambda: self._fill(target, partial, unheaded=True), self._error, _RETRIED
                )
                digest = partial.digest()
                if digest != etag:
                    raise HubError(
                        Reason.CHECKSUM_MISMATCH,
                        f"{self.ref.path}: downloaded content hashes to {digest[:16]}…, "
                        f"the hub says {etag[:16]}…; the download was discarded",
                        transient=False,
                    )
                partial.publish(blob)
            finally:
                partial.discard()
            _link(snapshot, blob)
        self._report(size, size, force=True)
        return Fetched(snapshot, blob, etag, digest, self.transferred, 0)

    # ----------------------------------------------------------------- metadata

    def _head(self) -> _Target:
        """The file's metadata, as huggingface_hub's ``get_hf_file_metadata`` reads them:
        a HEAD that follows the redirects staying on the Hub (a renamed repo) and stops at
        the one that leaves it (a CDN), whose headers describe the file."""
        url = hf_url(self.ref, self.endpoint)
        answer, location = self._metadata(url)
        headers = answer.headers
        etag = headers.get("X-Linked-Etag") or headers.get("ETag")
        size = headers.get("X-Linked-Size")
        if size is None and answer.status not in wire.REDIRECTS:
            size = headers.get("Content-Length")
        etag, expected = self._check_metadata(
            headers.get("X-Repo-Commit"),
            None if etag is None else _normalized_etag(etag),
            int(size) if size and size.isdigit() else None,
        )
        if _xet_backed(headers) or location == url:
            # Without hf_xet, huggingface_hub GETs the /resolve URL itself and follows its
            # redirects; the token is dropped when a redirect leaves the origin.
            return _Target(url, etag, expected, keep_auth=True)
        return _Target(location, etag, expected, keep_auth=wire.same_origin(url, location))

    def _metadata(self, url: str) -> tuple[wire.Answer, str]:
        """The answer that describes the file, and where its body is (the URL it answered
        for, or where its redirect sends the client)."""
        revisions.refuse_offline()
        headers = revisions.hub_headers(self.token)
        # The stored bytes' size, not a compressed rendition's.
        headers["Accept-Encoding"] = "identity"
        for _ in range(wire.MAX_REDIRECTS + 1):
            answer = wire.head(
                url,
                headers,
                connect_timeout=self.timeouts.connect,
                read_timeout=self.timeouts.read,
            )
            if answer.status >= 400:
                self._raise_for(answer, url, "for its metadata")
            location = answer.headers.get("Location")
            if answer.status not in wire.REDIRECTS or not location:
                return answer, url
            following = urljoin(url, location)
            if not _on_the_hub(url, following):
                return answer, following
            url = following
        raise wire.WireError(f"more than {wire.MAX_REDIRECTS} redirects", final=True)

    def _check_metadata(
        self, commit: str | None, etag: str | None, size: int | None
    ) -> tuple[str, int]:
        ref = self.ref
        if commit is None or etag is None:
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{ref.where}: {self.endpoint} did not send X-Repo-Commit and an ETag; "
                "is it a Hugging Face Hub endpoint?",
                transient=False,
            )
        try:
            HashKind.for_etag(etag)  # the etag becomes a file name: only hex digests pass
        except ValueError:
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{ref.where}: the hub's etag {etag[:80]!r} is not a sha256 or git blob id",
                transient=False,
            ) from None
        expected_size = size if size is not None else ref.size
        problems = []
        if commit != ref.commit:
            problems.append(f"commit {commit[:12]}")
        if ref.etag is not None and etag != ref.etag:
            problems.append(f"etag {etag[:16]}… instead of {ref.etag[:16]}…")
        if ref.size is not None and expected_size != ref.size:
            problems.append(f"{expected_size} bytes instead of {ref.size}")
        if problems:
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{ref.where}: the hub now answers with {', '.join(problems)}; plan again",
                transient=False,
            )
        if expected_size is None:
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{ref.where}: the hub did not say the file's size",
                transient=False,
            )
        return etag, expected_size

    # ----------------------------------------------------------------- body

    def _download(self, target: _Target, blob: Path) -> tuple[str, int]:
        """Fill the partial, verify it and move it to ``blob``; (digest, bytes resumed)."""
        partial = self._open_partial(target, blob)
        resumed_from = partial.resumed_from
        try:
            while True:
                self.attempts.until_done(lambda: self._fill(target, partial), self._error, _RETRIED)
                digest = partial.digest()
                if digest == target.etag:
                    partial.publish(blob)
                    self._report(target.size, target.size, force=True)
                    return digest, resumed_from
                if partial.resumed_from == 0:
                    partial.discard()
                    raise HubError(
                        Reason.CHECKSUM_MISMATCH,
                        f"{self.ref.path}: downloaded content hashes to {digest[:16]}…, "
                        f"the hub says {target.etag[:16]}…; the download was discarded",
                        transient=False,
                    )
                # A prefix from an earlier run can be damaged (a power loss after the kernel
                # acknowledged the writes, another tool): fetch the whole file once more
                # before blaming the hub.
                partial.restart()
        finally:
            partial.close()

    def _open_partial(self, target: _Target, blob: Path) -> Partial:
        """The partial, filled as byte ranges first when the file is large enough; a hub
        that will not serve them leaves it to be continued over one connection."""
        ref = self.ref
        record = Sidecar(ref.repo, ref.path, ref.commit, target.etag, target.size)
        if self.connections < 2 or target.size <= ranged.RANGED_ABOVE:
            partial = Partial.open(blob, record, self.stop)
            self._report(partial.size, target.size, force=True)
            return partial
        partial = Partial.open_ranged(blob, record)
        try:
            self._fill_ranges(target, partial)
        except RangesRefused as e:
            log.warning("%s: %s; fetching it over one connection", ref.where, e)
            partial.to_in_order()
        except BaseException:
            partial.close()
            raise
        return partial

    def _fill_ranges(self, target: _Target, partial: Partial) -> None:
        source = RangeSource(
            where=self.ref.where,
            get=lambda headers: self._get(target, headers),
            raise_for=lambda body: self._raise_for(body, target.url),
            classify=self._error,
            retry=self.retry,
            speed_floor=self.speed_floor,
            chunk_size=self.limiter.chunk_size() if self.limiter else CHUNK_SIZE,
            throttle=self.limiter.take if self.limiter else None,
        )
        download = RangedDownload(
            partial,
            source,
            connections=self.connections,
            budget=self.budget,
            stop=self.stop,
            progress=lambda done: self._report(done, target.size),
        )
        self._report(partial.resumed_from, target.size, force=True)
        try:
            download.run()
        finally:
            self.transferred += download.received

    def _fill(
        self, target: _Target, partial: Partial | PrivatePartial, *, unheaded: bool = False
    ) -> None:
        """One GET of whatever is still missing (a ``Range`` after a cut connection); raises
        when the body ends short.  ``unheaded``: no HEAD came before, so the GET's answer is
        checked as the HEAD's would have been."""
        if partial.size >= target.size:
            return
        watchdog = Watchdog(self.speed_floor, self.ref.where)
        with self._get(target, self._resume_headers(partial)) as body, self._interruptible(body):
            self._check_resume(body, partial, target)
            if unheaded:
                self._check_metadata(*_described(body))
            self._accept(body, partial, target)
            self._stream(body, partial, target.size, watchdog)
        if partial.size < target.size:
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{self.ref.where}: the body ended after {partial.size} of {target.size} bytes",
                transient=True,
            )

    def _stream(
        self, body: wire.Body, partial: Partial | PrivatePartial, total: int, watchdog: Watchdog
    ) -> None:
        """The body into ``partial``, hashed on the way, until the body ends."""
        size = self.limiter.chunk_size() if self.limiter else CHUNK_SIZE
        buffer = memoryview(bytearray(size))  # one per GET, reused for every read
        while n := body.readinto(buffer):
            if self.limiter is not None:
                self.limiter.take(n)
            self.transferred += n
            # The same bytes go to the file and to the hash, from the same buffer.
            partial.write(buffer[:n])
            self.attempts.progressed()
            self._report(partial.size, total)
            if self.stop is not None:
                self.stop.check()  # between chunks: the partial is a whole, hashed prefix
            watchdog.passed(n)

    def _report(self, done: int, total: int, *, force: bool = False) -> None:
        if self.progress is None or (not force and 0 <= done - self._reported < PROGRESS_EVERY):
            return
        self._reported = done
        self.progress(done, total)

    def _interruptible(self, body: wire.Body) -> contextlib.AbstractContextManager[None]:
        """While the body streams, a stop shuts the socket down: a read blocked on a held or
        stalled connection returns at once instead of after the read timeout."""
        if self.stop is None:
            return contextlib.nullcontext()
        return self.stop.waking(body.interrupt)

    @staticmethod
    def _resume_headers(partial: Partial | PrivatePartial) -> dict[str, str]:
        if not partial.size:
            return {}
        headers = {"Range": f"bytes={partial.size}-"}
        if partial.validator:
            # The validator is the one this URL's server gave; if the resource changed, the
            # server answers 200 with all of it instead of a mismatched tail.
            headers["If-Range"] = partial.validator
        return headers

    def _check_resume(
        self, body: wire.Body, partial: Partial | PrivatePartial, target: _Target
    ) -> None:
        if body.status == 416 and partial.size:
            partial.restart()  # the server disagrees about what we hold: start over
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{self.ref.where}: the hub refused the range; starting over",
                transient=True,
            )
        if body.status >= 400:
            self._raise_for(body, target.url)

    @contextlib.contextmanager
    def _get(self, target: _Target, extra: dict[str, str]) -> Iterator[wire.Body]:
        """A GET of the file's body with huggingface_hub's headers, plus ``extra``."""
        headers = revisions.hub_headers(self.token)
        if not target.keep_auth:
            headers.pop("authorization", None)
        # Exact bytes, not a compressed rendition: ranges and sizes count stored bytes.
        headers["Accept-Encoding"] = "identity"
        headers.update(extra)
        with wire.get(
            target.url,
            headers,
            connect_timeout=self.timeouts.connect,
            read_timeout=self._read_timeout(),
        ) as body:
            yield body

    def _raise_for(
        self, answer: wire.Body | wire.Answer, url: str, what: str = "for a download"
    ) -> NoReturn:
        """huggingface_hub's own reading of an error answer (gated, missing repo, its error
        codes), on a response rebuilt from what came over the wire, as a HubError."""
        try:
            revisions.raise_as_read(answer, url)
        except Exception as e:
            raise self._error(e) from None
        raise HubError(
            Reason.DOWNLOAD_FAILED,
            f"{self.ref.where}: unexpected HTTP {answer.status} {what}",
            transient=answer.status >= 500,
        )

    def _read_timeout(self) -> float:
        """A connection silent for a whole watchdog window is as good as a trickle."""
        floor = self.speed_floor
        return min(self.timeouts.read, floor.window) if floor.enabled else self.timeouts.read

    def _accept(
        self, response: wire.Body, partial: Partial | PrivatePartial, target: _Target
    ) -> None:
        """Line the partial up with what the server is about to send."""
        status = response.status
        if status == 206:
            first, _, total = content_range(response.headers.get("Content-Range"))
            held = partial.size  # what the message names, before the restart forgets it
            if first == held and total in (None, target.size):
                partial.remember_validator(response.headers.get("ETag"))
                return
            partial.restart()
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{self.ref.where}: the hub sent bytes from {first} of {total}, "
                f"not from {held} of {target.size}; starting over",
                transient=True,
            )
        if status == 200:
            if partial.size:
                partial.restart()  # the server ignored the range (or the validator changed)
            partial.remember_validator(response.headers.get("ETag"))
            return
        raise HubError(
            Reason.DOWNLOAD_FAILED,
            f"{self.ref.where}: unexpected HTTP {status} for a download",
            transient=False,
        )

    # ----------------------------------------------------------------- errors

    def _error(self, error: Exception) -> HubError:
        return _as_hub_error(error, self.ref, self.endpoint)


# --------------------------------------------------------------------------- cache layout


def _link(snapshot: Path, blob: Path) -> None:
    """``snapshots/<commit>/<path>`` -> ``../../blobs/<etag>``, relative as hf makes it.

    Replaced in one rename: an application never sees the entry missing or pointing at
    nothing.  Not synced here: the snapshot's directories are synced once, before a ref
    names the commit (:func:`controller.cache.layout.write_ref`); until then a power loss
    can only lose the link, and the file is fetched again.
    """
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(os.path.abspath(blob), os.path.abspath(snapshot.parent))
    if snapshot.is_symlink() and os.readlink(snapshot) == relative:
        return
    atomic_symlink(relative, snapshot, durable=False)


# --------------------------------------------------------------------------- helpers


def hf_url(ref: FileRef, endpoint: str) -> str:
    """The file's ``/resolve`` URL, as huggingface_hub's ``hf_hub_url`` builds it for a model
    (the tests hold the two to the same answers).  Built here: importing the module that
    defines it, with its progress bars and asyncio, was about 50 ms of every apply."""
    return f"{endpoint}/{ref.repo}/resolve/{quote(ref.commit, safe='')}/{quote(ref.path)}"


def _normalized_etag(value: str) -> str:
    """An ETag as huggingface_hub normalises it: no weak marker, no quotes."""
    return value.removeprefix("W/").strip('"')


_XET_AUTH = re.compile(r'rel\s*=\s*"?xet-auth"?')  # a Link to the Xet token, quoted or not


def _xet_backed(headers: Message) -> bool:
    """Whether the hub describes the file as stored in Xet (huggingface_hub's
    ``parse_xet_file_data_from_response``: a hash, and where to refresh the token)."""
    if not headers.get("X-Xet-Hash"):
        return False
    links = headers.get("Link") or ""
    return _XET_AUTH.search(links) is not None or headers.get("X-Xet-Refresh-Route") is not None


# Origins huggingface_hub forwards the token to and follows redirects within (its
# ``_HUB_ORIGINS``): the public Hub, its short domain, its staging host, and the endpoint.
_HUB_HOSTS = ("https://huggingface.co", "https://hf.co", "https://hub-ci.huggingface.co")


def _on_the_hub(url: str, target: str) -> bool:
    """Whether a redirect from ``url`` to ``target`` stays on the Hub (huggingface_hub follows
    it, with the token) rather than leaving for a CDN (it stops there)."""
    from huggingface_hub import constants

    hub = (*_HUB_HOSTS, constants.ENDPOINT)
    return wire.same_origin(url, target) or any(wire.same_origin(h, target) for h in hub)


def _described(body: wire.Body) -> tuple[str | None, str | None, int | None]:
    """(commit, etag, size) as huggingface_hub's HEAD would read them, from a GET's answers.

    The hub's answer is the last one that names a commit: the file itself, or the redirect
    that sends the client on to a CDN, which carries the file's etag and size in
    ``X-Linked-Etag``/``X-Linked-Size`` (its own ``Content-Length`` is the redirect's).
    """
    answers = [(r.status, r.headers) for r in body.redirects] + [(body.status, body.headers)]
    hub = [a for a in answers if a[1].get("X-Repo-Commit")]
    status, headers = hub[-1] if hub else answers[-1]
    etag = headers.get("X-Linked-Etag") or headers.get("ETag")
    if etag is not None:
        etag = _normalized_etag(etag)
    size = headers.get("X-Linked-Size")
    if size is None and status == 200:  # a range's or a redirect's length is not the file's
        size = headers.get("Content-Length")
    return headers.get("X-Repo-Commit"), etag, int(size) if size and size.isdigit() else None


def _as_hub_error(error: Exception, ref: FileRef, endpoint: str) -> HubError:
    """Every failure as a HubError; ``transient`` decides whether it is retried."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(error, HubError):
        return error
    if isinstance(error, OfflineModeIsEnabled):
        return HubError(
            Reason.HUB_UNREACHABLE,
            f"{ref.where}: HF_HUB_OFFLINE is set, so nothing is downloaded",
            transient=False,
        )
    if isinstance(error, HfHubHTTPError):
        mapped = revisions.to_hub_error(
            error, repo=ref.repo, revision=ref.commit, endpoint=endpoint, path=ref.path
        )
        wait = _retry_after(error.response.headers.get("Retry-After")) if mapped.transient else None
        return HubError(mapped.reason, mapped.message, transient=mapped.transient, retry_after=wait)
    if isinstance(error, wire.WireError):
        return HubError(
            Reason.DOWNLOAD_FAILED,
            f"{ref.where}: connection to {_origin(endpoint)} failed: "
            + revisions.redact(str(error)),
            transient=not error.final,
        )
    if isinstance(error, (httpx2.UnsupportedProtocol, httpx2.TooManyRedirects)):
        return HubError(Reason.DOWNLOAD_FAILED, f"{ref.where}: {_describe(error)}", transient=False)
    if isinstance(error, httpx2.TransportError):
        # Refused or reset connections, timeouts, bodies cut short: worth another try.
        return HubError(
            Reason.DOWNLOAD_FAILED,
            f"{ref.where}: connection to {_origin(endpoint)} failed: {_describe(error)}",
            transient=True,
        )
    if isinstance(error, OSError):
        # Local trouble outside the partial's writes (creating directories, the lock, the
        # sidecar): the disk again, most likely.
        return HubError(
            Reason.DISK_FULL if error.errno in _DISK_FULL else Reason.DOWNLOAD_FAILED,
            f"{ref.path}: cannot write to the cache: {error.strerror or error}",
            transient=False,
        )
    return HubError(Reason.DOWNLOAD_FAILED, f"{ref.where}: {_describe(error)}", transient=False)


def _describe(error: Exception) -> str:
    return revisions.redact(wire.describe(error))


def _origin(url: str) -> str:
    parts = httpx2.URL(url)
    return f"{parts.scheme}://{parts.netloc.decode('ascii')}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - utcnow()).total_seconds())

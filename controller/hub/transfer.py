"""Resumable, verified download of one file into the Hugging Face cache layout.

huggingface_hub never hashes what it downloads, and it writes to a process-unique
``<etag>.<uuid8>.incomplete`` that it deletes in ``finally``: a download killed by ``kill -9``
starts over from byte 0 in the next process (HF_HUB_FACTS §1.2).  This module keeps the
cache layout and the HTTP plumbing of huggingface_hub (``hf_hub_url``, its HEAD, its shared
session, its headers, so endpoint, auth and user agent are exactly hf's) and changes three
things:

* the partial file has a **stable** name, ``blobs/<etag>.incomplete``, next to a small
  sidecar ``blobs/<etag>.incomplete.json`` saying what it is a prefix of; the next process
  finds both and continues with ``Range: bytes=<size>-``;
* every byte is hashed on its way to disk (the prefix of a resumed partial is hashed once,
  on open), and the blob is published only if size and digest match its etag -- so the
  caller gets a verified digest without reading the file a second time;
* network faults are retried with exponential backoff and full jitter, a retry after a
  partial body continues where the bytes on disk end, and every request has a timeout.

Writers of the same blob exclude each other through huggingface_hub's own per-blob lock
(``<cache>/.locks/models--org--name/<etag>.lock``), so an application calling
``hf_hub_download`` and modelsync never write the same blob at once.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx2

from controller.cache import layout, partial_claim
from controller.cache.blob_lock import blob_lock
from controller.cache.hashing import BlobHasher, HashKind, feed_from
from controller.domain import Reason
from controller.domain.units import human_bytes
from controller.hub import revisions, wire
from controller.hub.revisions import HubError
from controller.hub.watchdog import DEFAULT_FLOOR, SpeedFloor, Watchdog
from controller.system.atomic import atomic_symlink, atomic_write_text, fsync_dir
from controller.system.cancel import ModelStop
from controller.system.clock import utcnow

# The most one read takes from the socket into a connection's reused buffer, and so the most
# written and hashed at once: each byte is copied from the kernel, then hashed and copied to
# the page cache from the same buffer.  256 KiB stays in a core's L2 cache between the three
# (measured on 4 x 256 MiB over loopback: clearly less CPU than 1 MiB or 4 MiB reads),
# is far above the size where hashlib releases the GIL, and is the most a kill can leave
# in flight beyond what is on disk.
CHUNK_SIZE = 256 * 1024
# Every write goes straight to the kernel (no user-space buffer), so a kill -9 loses nothing
# that was written; fsync bounds what a power loss can take.
FSYNC_EVERY = 64 * 1024 * 1024
# Progress is reported after at least this many new bytes, not per transport chunk (~64 KiB):
# at 1 GB/s that is a thousand calls a second instead of sixteen thousand.
PROGRESS_EVERY = 1024 * 1024
SIDECAR_SUFFIX = ".json"
SIDECAR_VERSION = 1

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

_T = TypeVar("_T")

# Told (bytes of the file on disk, its size) as a download advances, including the prefix of
# a resumed partial; a restarted download goes back to 0.
Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: exponential backoff with full jitter, or what the server asks.

    ``attempts`` counts tries of one step (the HEAD, or the body) without progress: a body
    that keeps arriving in pieces resets the count, so a flaky link still finishes a 30 GB
    file.  Full jitter (a uniform wait up to the exponential bound) spreads out the retries of
    many nodes that lost the same mirror at the same moment.
    """

    attempts: int = 6
    base: float = 1.0  # seconds; the bound of the first wait
    cap: float = 30.0  # seconds; no wait bound grows beyond this
    max_retry_after: float = 60.0  # a server's Retry-After is honoured up to this many seconds

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if min(self.base, self.cap, self.max_retry_after) < 0:
            raise ValueError("retry delays cannot be negative")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        bound = min(self.cap, self.base * 2.0 ** (failures - 1))
        return random.uniform(0.0, bound)


@dataclass(frozen=True)
class Timeouts:
    """Per-request limits: huggingface_hub's session has none, and a stalled mirror must
    fail the attempt (to be retried) rather than hang the controller."""

    connect: float = 10.0
    read: float = 30.0  # longest silence between two reads of a body (also write and pool)

    def for_httpx(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.read, connect=self.connect)


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


DEFAULT_RETRY = RetryPolicy()
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
) -> Fetched:
    """Put ``ref`` into the cache, verified, and link it into its snapshot.

    Raises :class:`~controller.hub.revisions.HubError` (``transient`` tells whether a later run may
    succeed) and :class:`~controller.cache.layout.UnsafePathError`.  ``token`` is passed to
    huggingface_hub as is: ``None`` means its usual look-up (``HF_TOKEN``, the login).
    ``stop`` ends the download between two chunks with :class:`~controller.system.cancel.Cancelled`,
    keeping the partial file for the next attempt.  ``offline`` links a cached blob and
    sends no request: a file that needs one fails (``HUB_UNREACHABLE``), its partial kept.
    A body slower than ``speed_floor`` over its window is cut and resumed over a new
    connection (:mod:`controller.hub.watchdog`).
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
        self.attempts = _Attempts(retry, stop)
        self.transferred = 0
        self._reported = -1  # bytes on disk at the last progress report

    def run(self, snapshot: Path) -> Fetched:
        target = self.attempts.until_done(self._head, self._error)
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

    # ----------------------------------------------------------------- metadata

    def _head(self) -> _Target:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        ref = self.ref
        url = hf_hub_url(ref.repo, ref.path, revision=ref.commit, endpoint=self.endpoint)
        # get_hf_file_metadata types ``timeout`` as a float but hands it to httpx2 unchanged,
        # which is how the HEAD gets separate connect and read limits.
        timeout: Any = self.timeouts.for_httpx()
        meta = get_hf_file_metadata(url, token=self.token, timeout=timeout, endpoint=self.endpoint)
        etag, size = self._check_metadata(meta.commit_hash, meta.etag, meta.size)
        if meta.xet_file_data is not None or meta.location == url:
            # Without hf_xet, huggingface_hub GETs the /resolve URL itself and follows its
            # redirects; httpx2 drops the token when a redirect leaves the origin.
            return _Target(url, etag, size, keep_auth=True)
        return _Target(meta.location, etag, size, keep_auth=wire.same_origin(url, meta.location))

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
        partial = _Partial.open(blob, self.ref, target, self.stop)
        resumed_from = partial.size
        self._report(partial.size, target.size, force=True)
        try:
            while True:
                self.attempts.until_done(lambda: self._fill(target, partial), self._error)
                digest = partial.digest()
                if digest == target.etag:
                    partial.publish(blob)
                    self._report(partial.size, target.size, force=True)
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

    def _fill(self, target: _Target, partial: _Partial) -> None:
        """One GET of whatever is still missing; raises when the body ends short."""
        if partial.size >= target.size:
            return
        watchdog = Watchdog(self.speed_floor, self.ref.where)
        with self._get(target, partial) as body, self._interruptible(body):
            self._accept(body, partial, target)
            size = self.limiter.chunk_size() if self.limiter else CHUNK_SIZE
            buffer = memoryview(bytearray(size))  # one per GET, reused for every read
            while n := body.readinto(buffer):
                if self.limiter is not None:
                    self.limiter.take(n)
                self.transferred += n
                # The same bytes go to the file and to the hash, from the same buffer.
                partial.write(buffer[:n])
                self.attempts.progressed()
                self._report(partial.size, target.size)
                if self.stop is not None:
                    self.stop.check()  # between chunks: the partial is a whole, hashed prefix
                watchdog.passed(n)
        if partial.size < target.size:
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{self.ref.where}: the body ended after {partial.size} of {target.size} bytes",
                transient=True,
            )

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

    @contextlib.contextmanager
    def _get(self, target: _Target, partial: _Partial) -> Iterator[wire.Body]:
        from huggingface_hub import hf_raise_for_status

        # Public (documented) but re-exported lazily, which mypy cannot follow.
        from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

        headers = build_hf_headers(token=self.token)
        if not target.keep_auth:
            headers.pop("authorization", None)
        # Exact bytes, not a compressed rendition: ranges and sizes count stored bytes.
        headers["Accept-Encoding"] = "identity"
        if partial.size:
            headers["Range"] = f"bytes={partial.size}-"
            if partial.validator:
                # The validator is the one this URL's server gave; if the resource changed,
                # the server answers 200 with all of it instead of a mismatched tail.
                headers["If-Range"] = partial.validator
        with wire.get(
            target.url,
            headers,
            connect_timeout=self.timeouts.connect,
            read_timeout=self._read_timeout(),
        ) as body:
            if body.status == 416 and partial.size:
                partial.restart()  # the server disagrees about what we hold: start over
                raise HubError(
                    Reason.DOWNLOAD_FAILED,
                    f"{self.ref.where}: the hub refused the range; starting over",
                    transient=True,
                )
            if body.status >= 400:
                # huggingface_hub's own reading of an error (gated, missing repo, its error
                # codes), on a response rebuilt from what came over the wire.
                hf_raise_for_status(_as_httpx(body, target.url))
            yield body

    def _read_timeout(self) -> float:
        """A connection silent for a whole watchdog window is as good as a trickle."""
        floor = self.speed_floor
        return min(self.timeouts.read, floor.window) if floor.enabled else self.timeouts.read

    def _accept(self, response: wire.Body, partial: _Partial, target: _Target) -> None:
        """Line the partial up with what the server is about to send."""
        status = response.status
        if status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first == partial.size and total in (None, target.size):
                partial.remember_validator(response.headers.get("ETag"))
                return
            partial.restart()
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{self.ref.where}: the hub sent bytes from {first} of {total}, "
                f"not from {partial.size} of {target.size}; starting over",
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


class _Attempts:
    """Counts consecutive failures of one download and sleeps between attempts."""

    def __init__(self, policy: RetryPolicy, stop: ModelStop | None = None) -> None:
        self.policy = policy
        self.stop = stop
        self.failures = 0

    def progressed(self) -> None:
        self.failures = 0

    def until_done(self, step: Callable[[], _T], classify: Callable[[Exception], HubError]) -> _T:
        while True:
            try:
                return step()
            except (HubError, httpx2.HTTPError, wire.WireError, OSError) as e:
                error = classify(e)
            if self.stop is not None:
                self.stop.check()  # the failure may be the stop's own doing (a shut socket)
            self._after(error)

    def _after(self, error: HubError) -> None:
        if not error.transient:
            raise error
        self.failures += 1
        if self.failures >= self.policy.attempts:
            raise HubError(
                error.reason,
                f"{error.message} (gave up after {self.failures} attempts)",
                transient=True,
            )
        self._wait(self.policy.delay(self.failures, error.retry_after))

    def _wait(self, seconds: float) -> None:
        if self.stop is None:
            time.sleep(seconds)
            return
        woken = threading.Event()
        with self.stop.waking(woken.set):
            woken.wait(seconds)
        self.stop.check()


# --------------------------------------------------------------------------- the partial file


class _Partial:
    """``blobs/<etag>.incomplete`` and its sidecar, the open file and the running digest.

    The file is always a prefix of the blob: bytes are appended in order and only once the
    sidecar says which blob they belong to, so whatever a kill leaves behind can be
    continued.  Writes bypass user-space buffering, so the file's size is exactly the bytes
    hashed so far.
    """

    def __init__(self, path: Path, sidecar: Path, ref: FileRef, target: _Target) -> None:
        self.path = path
        self.sidecar = sidecar
        self.ref = ref
        self.target = target
        self.validator: str | None = None
        self.size = 0
        self.resumed_from = 0
        self._hasher = BlobHasher.for_etag(target.etag, target.size)
        self._unsynced = 0
        self._fd = -1

    @classmethod
    def open(
        cls, blob: Path, ref: FileRef, target: _Target, stop: ModelStop | None = None
    ) -> _Partial:
        """``stop`` can cut short the hashing of a resumed prefix (raising
        :class:`~controller.system.cancel.Cancelled`); the prefix and its sidecar stay on disk."""
        path = blob.with_name(blob.name + ".incomplete")
        partial = cls(path, path.with_name(path.name + SIDECAR_SUFFIX), ref, target)
        partial._open(stop)
        return partial

    def _open(self, stop: ModelStop | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        sidecar = self._read_sidecar()
        resumable = sidecar is not None and self._describes_target(sidecar)
        if not resumable:
            # The sidecar goes first: a partial on disk is only ever continued when a sidecar
            # says which blob it is a prefix of.
            self._write_sidecar(validator=None)
        # O_NOFOLLOW: a link planted in blobs/ must not redirect our writes elsewhere.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o666)
        try:
            if resumable and sidecar is not None:
                self.validator = _str_or_none(sidecar.get("validator"))
                self._hash_prefix(stop)
            else:
                os.ftruncate(self._fd, 0)
        except BaseException:
            self.close()
            raise

    def _read_sidecar(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _describes_target(self, sidecar: dict[str, Any]) -> bool:
        # The etag names the content, so a partial stays valid across commits that share the
        # blob; the commit in the sidecar is for people looking at the cache.
        return (
            sidecar.get("version") == SIDECAR_VERSION
            and sidecar.get("etag") == self.target.etag
            and sidecar.get("size") == self.target.size
        )

    def _write_sidecar(self, *, validator: str | None) -> None:
        record = {
            "version": SIDECAR_VERSION,
            "repo": self.ref.repo,
            "path": self.ref.path,
            "commit": self.ref.commit,
            "etag": self.target.etag,
            "size": self.target.size,
            "validator": validator,
        }
        atomic_write_text(self.sidecar, json.dumps(record, indent=1) + "\n")

    def _hash_prefix(self, stop: ModelStop | None) -> None:
        """Feed the bytes already on disk to the hasher, leaving the file positioned after
        them: the digest at the end then covers the whole file with a single read of it.

        A prefix of tens of GB takes a while to hash, so a stop ends it between chunks; the
        file is left untouched (not truncated) for the next attempt to hash again."""
        size = os.fstat(self._fd).st_size
        if size > self.target.size:  # cannot be a prefix of this blob: start over
            os.ftruncate(self._fd, 0)
            return
        requested = stop.requested if stop is not None else None
        # Fewer bytes than ``size`` when the file shrank under us: what was read is the prefix.
        position = feed_from(self._fd, self._hasher, limit=size, stop=requested)
        os.ftruncate(self._fd, position)
        self.size = self.resumed_from = position

    def remember_validator(self, etag_header: str | None) -> None:
        """Keep the GET's own strong ETag for ``If-Range`` when this partial is continued."""
        value = etag_header.strip() if etag_header else None
        if value and value.startswith("W/"):
            value = None  # weak validators are not allowed in If-Range
        if value != self.validator:
            self.validator = value
            self._write_sidecar(validator=value)

    def write(self, data: bytes | memoryview) -> None:
        if self.size + len(data) > self.target.size:
            self.discard()
            raise HubError(
                Reason.SIZE_MISMATCH,
                f"{self.ref.path}: the hub sent more than the {self.target.size} bytes it "
                "announced; the download was discarded",
                transient=False,
            )
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as e:
                raise self._write_error(e) from None
            # Hash exactly what reached the file, so size and digest never disagree.
            self._hasher.update(view[:written])
            self.size += written
            self._unsynced += written
            view = view[written:]
        if self._unsynced >= FSYNC_EVERY:
            self._sync()

    def _sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise self._write_error(e) from None
        self._unsynced = 0

    def _write_error(self, e: OSError) -> HubError:
        remaining = self.target.size - self.size
        if e.errno in _DISK_FULL:
            free = _free_bytes(self.path.parent)
            return HubError(
                Reason.DISK_FULL,
                f"{self.ref.path}: the disk is full: {human_bytes(remaining)} "
                f"({remaining} bytes) more needed in {self.path.parent}, "
                f"{human_bytes(free)} free; the {human_bytes(self.size)} downloaded so far "
                "are kept and the download resumes once there is room",
                transient=False,
            )
        return HubError(
            Reason.DOWNLOAD_FAILED,
            f"{self.ref.path}: cannot write {self.path}: {e.strerror or e}",
            transient=False,
        )

    def digest(self) -> str:
        return self._hasher.hexdigest()

    def restart(self) -> None:
        """Forget every byte: the server sends the whole file next."""
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hasher = BlobHasher.for_etag(self.target.etag, self.target.size)
        self.size = self.resumed_from = self._unsynced = 0
        if self.validator is not None:
            self.validator = None
            self._write_sidecar(validator=None)

    def publish(self, blob: Path) -> None:
        """Durably move the verified file to its blob name."""
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
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --------------------------------------------------------------------------- cache layout


def _link(snapshot: Path, blob: Path) -> None:
    """``snapshots/<commit>/<path>`` -> ``../../blobs/<etag>``, relative as hf makes it.

    Replaced in one rename: an application never sees the entry missing or pointing at
    nothing.
    """
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(os.path.abspath(blob), os.path.abspath(snapshot.parent))
    if snapshot.is_symlink() and os.readlink(snapshot) == relative:
        return
    atomic_symlink(relative, snapshot)


# --------------------------------------------------------------------------- helpers


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


def _as_httpx(body: wire.Body, url: str) -> httpx2.Response:
    """An error answer as the httpx response huggingface_hub's error handling reads."""
    return httpx2.Response(
        body.status,
        headers=list(body.headers.items()),
        content=body.read_error(),
        request=httpx2.Request("GET", url),
    )


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


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of ``bytes first-last/total``; None for parts that are absent."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes ") :].partition("/")
    first = span.split("-", 1)[0]
    return (
        int(first) if first.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _free_bytes(directory: Path) -> int:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return 0

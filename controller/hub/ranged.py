"""One large file fetched as byte ranges over several connections into its one partial.

Hubs and CDNs cap each connection (users see ~40 MB/s per connection from the Hugging Face
hub), so a large file is cut into pieces of :data:`PIECE_SIZE`, each one ranged GET, taken in
file order by a few worker threads: the file's own connection, plus extra ones while the
process's connection budget has room (:mod:`controller.hub.connections`) and the open ones
spend most of their time waiting for bytes (:data:`WAITING_SHARE`).  Workers write at
offsets into the preallocated partial and put the spans they wrote on the sidecar's record
every :data:`RECORD_EVERY` bytes, so a ``kill -9`` costs at most that much per connection.
The worker writing at the hashed frontier hashes its bytes from its own buffer; the calling
thread hashes the rest of the contiguous prefix as it grows, reading it back from the page
cache right behind the writers.  Every byte is hashed once and the digest is ready when the
last piece lands.

A hub that ignores ``Range`` (200), refuses parallel ranges (403, 416, 429) or changes the
file between them (another ETag) raises :class:`RangesRefused`: the caller fetches that file
over one connection from the contiguous prefix on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from controller.domain import Reason
from controller.hub import wire
from controller.hub.connections import ConnectionBudget
from controller.hub.partial import HASH_READ, Partial
from controller.hub.ranges import Span, content_range, covered, missing, pieces, prefix_end
from controller.hub.retry import Attempts, RetryPolicy
from controller.hub.revisions import HubError
from controller.hub.watchdog import SpeedFloor, Watchdog
from controller.system.cancel import ModelStop

MIB = 1024 * 1024
# Files above this are fetched as ranges.  Below it, one capped connection (~40 MB/s)
# finishes in under two seconds, and the extra connections' set-up (a TLS handshake each)
# and requests would cost about what they save; above it, every range of a four-way split
# is at least 16 MiB, long enough to leave TCP's slow start behind.
RANGED_ABOVE = 64 * MIB
# One GET per piece: small enough that connections freed by other files are put to work
# within a piece, large enough that a request per piece costs nothing next to its transfer.
PIECE_SIZE = 32 * MIB
# The sidecar records a connection's progress every this many bytes: what a kill -9 can
# cost, per connection, in bytes fetched twice.
RECORD_EVERY = 4 * MIB
# How often the hashing thread looks for budget freed by other files when no bytes arrive.
_IDLE_SECONDS = 0.2
# Another connection is opened only while the open ones spend more than this share of their
# time waiting for bytes: then the other end or the path holds each connection back (a CDN's
# per-connection cap) and another one adds throughput.  A connection that finds bytes waiting
# at every read is held back by this machine (over loopback, or a fast LAN, the client is
# CPU-bound), and another one would only add work: measured on 4 x 256 MiB over loopback,
# two connections per file cost about a fifth more CPU than one, for no more bytes a second.
WAITING_SHARE = 0.5
# The connection time seen before that share is trusted: about 2.5 MB at 50 MB/s.
_SAMPLE_SECONDS = 0.05

# Answers to a ranged GET that say "not in parallel here": fetch over one connection.
_REFUSALS = {403: "forbade", 416: "refused", 429: "rate-limited"}


class RangesRefused(Exception):
    """The hub does not serve this file's ranges in parallel; the message says why."""


@dataclass(frozen=True)
class RangeSource:
    """How a worker asks the hub for bytes, and what the caller's transfer settings are."""

    where: str  # repo@commit:path, for messages
    get: Callable[[dict[str, str]], contextlib.AbstractContextManager[wire.Body]]
    raise_for: Callable[[wire.Body], None]  # an error answer as the caller reads them
    classify: Callable[[Exception], HubError]
    retry: RetryPolicy
    speed_floor: SpeedFloor
    chunk_size: int
    throttle: Callable[[int], None] | None = None  # the shared bandwidth limit


class RangedDownload:
    """Fills and hashes ``partial`` (opened for ranges) over up to ``connections``."""

    def __init__(
        self,
        partial: Partial,
        source: RangeSource,
        *,
        connections: int,
        budget: ConnectionBudget,
        stop: ModelStop | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.partial = partial
        self.source = source
        self.connections = max(1, connections)
        self.budget = budget
        self.stop = stop
        self.progress = progress  # told the bytes on disk, from the hashing thread
        self.received = 0  # body bytes of every GET, counted under the lock below
        gaps = missing(partial.done, partial.total)
        # Up to PIECE_SIZE, but small enough that a file just above the threshold still
        # gives each connection a piece.
        piece_size = min(PIECE_SIZE, max(RECORD_EVERY, -(-covered(gaps) // self.connections)))
        self._pending = deque(pieces(gaps, piece_size))
        self._changed = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._active = 0  # workers running
        self._busy = 0  # workers with a piece in hand
        self._failure: BaseException | None = None
        self._aborted = threading.Event()
        self._bodies: set[wire.Body] = set()
        self._reading = 0.0  # seconds the connections spent in reads, under the lock
        self._waiting = 0.0  # ... of which waiting for bytes to arrive

    def run(self) -> None:
        """Returns once every byte is on disk and hashed; raises :class:`RangesRefused`,
        :class:`HubError` or :class:`~controller.system.cancel.Cancelled` otherwise, with
        the spans written so far on the sidecar's record."""
        self.budget.first(self)
        try:
            self._spawn(extra=False)
            with self._woken():
                self._hash_as_it_lands()
            self.partial.ranges_complete()
        finally:
            self._abort()
            self.budget.release(self)
            with self._changed:
                self.partial.save()

    # ----------------------------------------------------------------- the hashing thread

    def _hash_as_it_lands(self) -> None:
        buffer = memoryview(bytearray(HASH_READ))
        total = self.partial.total
        while self.partial.hashed < total:
            with self._changed:
                if self._failure is None and prefix_end(self.partial.done) <= self.partial.hashed:
                    self._changed.wait(_IDLE_SECONDS)
                if self._failure is not None:
                    raise self._failure
                end = prefix_end(self.partial.done)
                done = covered(self.partial.done)
                stalled = self._active == 0 and end < total
            if stalled:
                raise HubError(
                    Reason.DOWNLOAD_FAILED,
                    f"{self.source.where}: every range connection ended before the file did",
                    transient=True,
                )
            self._grow()
            self.partial.hash_through(end, buffer, self.stop)
            self.partial.sync_behind()
            if self.progress is not None:
                self.progress(done)
            if self.stop is not None:
                self.stop.check()

    def _grow(self) -> None:
        """Open another connection while pieces wait for one and the budget has room."""
        while True:
            with self._changed:
                waiting = self._active - self._busy  # started, about to take a piece
                wanted = (
                    self._active < self.connections
                    and len(self._pending) > waiting
                    and self._held_back_by_the_network()
                )
            if not wanted or not self.budget.extra(self):
                return
            self._spawn(extra=True)

    def _held_back_by_the_network(self) -> bool:
        """Whether the open connections mostly wait for bytes (called under the lock)."""
        return self._reading >= _SAMPLE_SECONDS and self._waiting > WAITING_SHARE * self._reading

    @contextlib.contextmanager
    def _woken(self) -> Iterator[None]:
        if self.stop is None:
            yield
            return
        with self.stop.waking(self._wake):
            yield

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()
        self._interrupt_all()

    # ----------------------------------------------------------------- workers

    def _spawn(self, *, extra: bool) -> None:
        with self._changed:
            self._active += 1
        worker = threading.Thread(
            target=self._work, args=(extra,), name=f"range-{len(self._workers)}", daemon=True
        )
        self._workers.append(worker)
        worker.start()

    def _work(self, extra: bool) -> None:
        try:
            while not self._aborted.is_set() and (piece := self._next_piece()) is not None:
                try:
                    self._fetch(piece)
                finally:
                    with self._changed:
                        self._busy -= 1
                if extra and not self.budget.keep(self):
                    return  # another file needs the connection more
        except BaseException as e:  # handed to the hashing thread, which raises it
            with self._changed:
                if self._failure is None and not self._aborted.is_set():
                    self._failure = e
        finally:
            if extra:
                self.budget.release(self)
            with self._changed:
                self._active -= 1
                self._changed.notify_all()

    def _next_piece(self) -> Span | None:
        with self._changed:
            if not self._pending:
                return None
            self._busy += 1
            return self._pending.popleft()

    def _fetch(self, piece: Span) -> None:
        """Every byte of ``piece``, over as many GETs as faults make necessary."""
        attempts = Attempts(self.source.retry, self.stop)
        at = [piece.start]  # how far the piece got, kept across attempts

        def one_get() -> None:
            try:
                self._get(Span(at[0], piece.end), at, attempts)
            except Exception:
                if self._aborted.is_set():
                    return  # our own interruption: no retry, no waiting
                raise

        retried = (HubError, wire.WireError, OSError)
        while at[0] < piece.end and not self._aborted.is_set():
            attempts.until_done(one_get, self.source.classify, retried)

    def _get(self, span: Span, at: list[int], attempts: Attempts) -> None:
        headers = {"Range": span.header}
        if self.partial.validator:
            headers["If-Range"] = self.partial.validator
        watchdog = Watchdog(self.source.speed_floor, self.source.where)
        with self.source.get(headers) as body, self._tracked(body):
            self._accept(body, span)
            buffer = memoryview(bytearray(self.source.chunk_size))
            unrecorded = 0
            started = time.perf_counter()
            while at[0] < span.end:
                # Time in a read counts as waiting only when no bytes were there yet: a read
                # of bytes already waiting can still take long to return, behind the GIL.
                waited = not body.has_bytes()
                asked = time.perf_counter()
                if not (n := body.readinto(buffer[: span.end - at[0]])):
                    break
                waiting = time.perf_counter() - asked if waited else 0.0
                if self._aborted.is_set():
                    return
                if self.source.throttle is not None:
                    self.source.throttle(n)
                self.partial.write_at(at[0], buffer[:n])
                # At the hashed frontier the bytes are hashed from this buffer, once.
                hashed = self.partial.hash_written(at[0], buffer[:n])
                unrecorded += n
                finished = time.perf_counter()
                with self._changed:
                    self._waiting += waiting
                    self._reading += finished - started
                    self.received += n
                    self.partial.mark_done(Span(at[0], at[0] + n))
                    at[0] += n
                    recorded = unrecorded >= RECORD_EVERY or at[0] == span.end
                    if recorded:
                        self.partial.save()
                        unrecorded = 0
                    # The hashing thread has bytes to read back, or progress to report; waking
                    # it for every chunk hashed here would cost more than the hashing.
                    if recorded or not hashed:
                        self._changed.notify_all()
                started = finished
                attempts.progressed()
                if self.stop is not None:
                    self.stop.check()
                watchdog.passed(n)
        if at[0] < span.end and not self._aborted.is_set():
            raise HubError(
                Reason.DOWNLOAD_FAILED,
                f"{self.source.where}: a range ended at byte {at[0]} of {span.start}-{span.end}",
                transient=True,
            )

    def _accept(self, body: wire.Body, span: Span) -> None:
        """A 206 for exactly ``span`` of this very file, or the reason to stop ranging."""
        if body.status in _REFUSALS:
            raise RangesRefused(
                f"the hub {_REFUSALS[body.status]} a ranged GET (HTTP {body.status})"
            )
        if body.status == 200:
            raise RangesRefused("the hub ignored Range (HTTP 200)")
        if body.status >= 400:
            self.source.raise_for(body)
        first, last, total = content_range(body.headers.get("Content-Range"))
        if body.status != 206 or first != span.start or total not in (None, self.partial.total):
            raise RangesRefused(
                f"the hub answered bytes {first}-{last}/{total} (HTTP {body.status}) "
                f"to a GET of {span.start}-{span.end - 1}"
            )
        self._same_file(body.headers.get("ETag"))

    def _same_file(self, etag_header: str | None) -> None:
        value = etag_header.strip() if etag_header else None
        strong = value if value and not value.startswith("W/") else None
        with self._changed:
            known = self.partial.validator
            if known is None and strong is not None:
                self.partial.remember_validator(strong)
                return
        if known is not None and strong != known:
            raise RangesRefused("the file's ETag changed between ranges")

    # ----------------------------------------------------------------- stopping

    @contextlib.contextmanager
    def _tracked(self, body: wire.Body) -> Iterator[None]:
        with self._changed:
            self._bodies.add(body)
        try:
            yield
        finally:
            with self._changed:
                self._bodies.discard(body)

    def _interrupt_all(self) -> None:
        with self._changed:
            bodies = list(self._bodies)
        for body in bodies:
            body.interrupt()

    def _abort(self) -> None:
        """Stop every worker and wait for it: none may write once the caller moves on."""
        self._aborted.set()
        self._interrupt_all()
        for worker in self._workers:
            worker.join()

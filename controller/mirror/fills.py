"""Coalesced fills: one upstream download per blob, served to every waiting client as it grows.

A miss starts a :class:`Fill`, a thread that puts the blob into the directory through the
project's resumable, sha256-verified transfer (:func:`controller.hub.transfer.fetch`); every
request for the same blob meanwhile joins it instead of starting another.  Clients read
the partial file (``blobs/<etag>.incomplete``) up to what the transfer reports written, so a
range already there goes out at once and a later one waits for its bytes.

A client must never receive a complete body that fails its hash, so the file's final byte
is held back until the transfer has verified the digest.  When it does not match, every
client part-way through the body has its connection cut (a short read, which clients
retry), the bad bytes are copied to the repo's ``.quarantine/`` for a person to look at, and
the blob is fetched again; clients that had received nothing yet wait for the new bytes.
When the upstream keeps sending bad bytes, the fill gives up, and for a short while requests
for the blob are refused with the reason (:class:`GaveUp`) rather than starting a fill that
would end the same way: a client told why can say why.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from controller.cache import layout
from controller.cache.hashing import HashKind
from controller.domain import Reason
from controller.hub import transfer
from controller.hub.errors import HubError as TransferError
from controller.hub.retry import RetryPolicy

FINAL_BYTES_HELD = 1  # bytes at the end of a file sent only once its digest is verified
FILL_ATTEMPTS = 3  # whole downloads tried when the upstream keeps sending bad bytes
# The mirror's clients wait on the fill, so it gives up on a dead upstream much sooner than
# a node's controller does; the client's own retries carry on from there.
FILL_RETRY = RetryPolicy(attempts=3, base=0.5, cap=4.0, max_retry_after=10.0)
WAIT_SLICE = 1.0  # seconds a reader waits before checking again that its fill is alive
# Seconds a blob whose upstream kept sending bad bytes is refused before it is fetched again:
# long enough that a client's quick retries (a node's span about half a minute) all hear why,
# and that a persistent fault costs the upstream a few copies a minute, not a stream of them;
# short enough that a mended upstream is seen soon.
GAVE_UP_TTL = 30.0


def sendable(written: int, total: int, verified: bool) -> int:
    """How many bytes from the start of a filling file may go to clients."""
    if verified:
        return total
    return max(0, min(written, total - FINAL_BYTES_HELD))


class Outcome(Enum):
    FILLING = "filling"
    VERIFIED = "verified"
    FAILED = "failed"


@dataclass(frozen=True)
class View:
    """What a reader may do now: read ``available`` bytes of generation ``generation``."""

    outcome: Outcome
    generation: int
    available: int
    stream: int  # a descriptor of the file being filled; -1 before it exists


class Fill:
    """One blob being fetched from upstream, and what of it clients may read."""

    def __init__(
        self,
        ref: transfer.FileRef,
        size: int,
        root: Path,
        endpoint: str,
        token: str | bool,
        on_fetched_bytes: Callable[[int], None],
        on_bad_body: Callable[[], None],
    ) -> None:
        self.ref = ref
        self.size = size
        self.root = root
        self.endpoint = endpoint
        self.token = token
        self.blob = layout.blob_path(root, ref.repo, ref.etag or "")
        self.error: str | None = None
        self.bad_bytes = False  # gave up because every download failed its hash
        self._on_fetched_bytes = on_fetched_bytes
        self._on_bad_body = on_bad_body
        self._changed = threading.Condition()
        self._outcome = Outcome.FILLING
        self._generation = 0
        self._written = 0
        self._stream = -1

    @property
    def outcome(self) -> Outcome:
        with self._changed:
            return self._outcome

    def run(self) -> None:
        """Fetch until verified or given up; called on the fill's own thread."""
        try:
            for _ in range(FILL_ATTEMPTS):
                try:
                    transfer.fetch(
                        self.ref,
                        cache_dir=self.root,
                        endpoint=self.endpoint,
                        token=self.token,
                        retry=FILL_RETRY,
                        connections_per_file=1,
                        progress=self._progress,
                    )
                except TransferError as error:
                    if error.reason is not Reason.CHECKSUM_MISMATCH:
                        self._settle(Outcome.FAILED, error.message)
                        return
                    self._quarantine()
                    self._on_bad_body()
                    self._next_generation()
                    continue
                self._settle(Outcome.VERIFIED, None)
                return
            self.bad_bytes = True
            self._settle(Outcome.FAILED, self._bad_bytes_message())
        except BaseException as error:  # a reader must never wait on a dead fill
            self._settle(Outcome.FAILED, f"{self.ref.where}: {type(error).__name__}: {error}")
            raise

    def _bad_bytes_message(self) -> str:
        kind = HashKind.of_blob_name(self.ref.etag or "")
        digest = kind.value if kind is not None else "hash"
        return (
            f"the upstream hub sent bytes for {self.ref.where} that fail their {digest}, "
            f"{FILL_ATTEMPTS} downloads in a row"
        )

    # The transfer's side.

    def _progress(self, done: int, total: int) -> None:
        with self._changed:
            if self._stream < 0:
                self._stream = _open_either(
                    self.blob.with_name(self.blob.name + ".incomplete"), self.blob
                )
                self._written = done  # a resumed prefix came from disk, not from upstream
            elif done < self._written:
                # The transfer started the file over: what readers sent may not be its bytes.
                self._generation += 1
            else:
                self._on_fetched_bytes(done - self._written)
            self._written = done
            self._changed.notify_all()

    def _next_generation(self) -> None:
        with self._changed:
            self._close_stream()
            self._generation += 1
            self._written = 0
            self._changed.notify_all()

    def _settle(self, outcome: Outcome, error: str | None) -> None:
        with self._changed:
            if self._outcome is not Outcome.FILLING:
                return
            self._outcome, self.error = outcome, error
            if outcome is Outcome.FAILED:
                self._close_stream()
            self._changed.notify_all()

    def _quarantine(self) -> None:
        """Copy the bytes that failed their hash out of the way; the transfer removed them."""
        with self._changed:
            stream = self._stream
            if stream < 0:
                return
            target = layout.quarantine_path(self.root, self.ref.repo, self.ref.etag or "")
            with contextlib.suppress(OSError), os.fdopen(os.dup(stream), "rb") as bad:
                target.parent.mkdir(parents=True, exist_ok=True)
                bad.seek(0)
                with open(target, "wb") as out:
                    shutil.copyfileobj(bad, out)

    def _close_stream(self) -> None:
        if self._stream >= 0:
            os.close(self._stream)
            self._stream = -1

    def release(self) -> None:
        """Close the fill's descriptor once no reader can join it any more."""
        with self._changed:
            self._close_stream()

    # The readers' side.

    def view(self, position: int, generation: int | None) -> View:
        """Block until byte ``position`` may be read, the fill ends, or its generation moves
        on from ``generation`` (None: any generation will do)."""
        with self._changed:
            while True:
                moved = generation is not None and generation != self._generation
                verified = self._outcome is Outcome.VERIFIED
                available = sendable(self._written, self.size, verified)
                if self._outcome is not Outcome.FILLING or moved or position < available:
                    stream = os.dup(self._stream) if self._stream >= 0 else -1
                    return View(self._outcome, self._generation, available, stream)
                self._changed.wait(WAIT_SLICE)


class GrowingBody:
    """A response body read from a fill, at ``offset`` of the file, ``length`` bytes long."""

    def __init__(self, fill: Fill, offset: int, length: int, count: Callable[[int], None]) -> None:
        self.fill = fill
        self.offset = offset
        self.length = length
        self._count = count

    def send(self, sock: socket.socket, start: int, count: int) -> int:
        """Send what the fill verifies or holds, as it arrives; fewer bytes when it fails or
        starts over after some went out (the handler then cuts the connection)."""
        sent = 0
        generation: int | None = None
        while sent < count:
            position = self.offset + start + sent
            view = self.fill.view(position, generation if sent else None)
            stream = view.stream if view.stream >= 0 else self._verified_blob(view)
            if stream < 0:
                return sent
            with os.fdopen(stream, "rb") as reader:
                if view.outcome is Outcome.FAILED or (sent and view.generation != generation):
                    return sent
                generation = view.generation
                chunk = min(view.available - position, count - sent)
                done = sock.sendfile(reader, position, chunk)
            self._count(done)
            sent += done
            if done < chunk:
                return sent
        return sent

    def _verified_blob(self, view: View) -> int:
        """A reader that came after the fill closed its descriptor reads the published blob."""
        if view.outcome is not Outcome.VERIFIED:
            return -1
        return _open_either(self.fill.blob, self.fill.blob)


class GaveUp(Exception):
    """The blob's last fill gave up on bad bytes; it is fetched again in ``retry_after`` s."""

    def __init__(self, why: str, retry_after: float) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after


class Fills:
    """The fills under way, one per blob: a request for a blob being filled joins its fill.

    A blob whose fill gave up on bad bytes is refused (:class:`GaveUp`) for ``gave_up_ttl``
    seconds after, by ``clock``.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, gave_up_ttl: float = GAVE_UP_TTL
    ) -> None:
        self._fills: dict[Path, Fill] = {}
        self._gave_up: dict[Path, tuple[str, float]] = {}  # blob -> (why, when)
        self._clock = clock
        self._gave_up_ttl = gave_up_ttl
        self._lock = threading.Lock()

    def join(self, blob: Path, start: Callable[[], Fill]) -> tuple[Fill, bool]:
        """The fill of ``blob`` and whether it was already under way (True: coalesced);
        raises :class:`GaveUp` while a fill of it that gave up is recent."""
        with self._lock:
            self._refuse_if_gave_up(blob)
            fill = self._fills.get(blob)
            if fill is not None:
                return fill, True
            fill = start()
            self._fills[blob] = fill
        return fill, False

    def check(self, blob: Path) -> None:
        """Raise :class:`GaveUp` while a fill of ``blob`` that gave up is recent."""
        with self._lock:
            self._refuse_if_gave_up(blob)

    def run(self, fill: Fill, after: Callable[[], None]) -> None:
        """Run ``fill`` on its own thread; ``after`` runs once it has ended and left."""

        def body() -> None:
            try:
                fill.run()
            finally:
                with self._lock:
                    if self._fills.get(fill.blob) is fill:
                        del self._fills[fill.blob]
                    # In the same step as leaving: no request in between starts a new fill.
                    if fill.bad_bytes and fill.error is not None:
                        self._forget_old_refusals()
                        self._gave_up[fill.blob] = (fill.error, self._clock())
                fill.release()
                after()

        threading.Thread(target=body, name=f"fill-{fill.blob.name[:12]}", daemon=True).start()

    def _refuse_if_gave_up(self, blob: Path) -> None:
        found = self._gave_up.get(blob)
        if found is None:
            return
        why, when = found
        left = self._gave_up_ttl - (self._clock() - when)
        if left <= 0:
            del self._gave_up[blob]
            return
        raise GaveUp(why, left)

    def _forget_old_refusals(self) -> None:
        now = self._clock()
        for blob, (_, when) in list(self._gave_up.items()):
            if now - when >= self._gave_up_ttl:
                del self._gave_up[blob]


def _open_either(partial: Path, blob: Path) -> int:
    """The partial being written, or the blob when the transfer found it already complete."""
    for path in (partial, blob):
        with contextlib.suppress(FileNotFoundError):
            return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    return -1

"""A claim that holds across the nodes of a shared file system: a file, created exclusively.

``flock`` is the right tool on one machine: the kernel drops it when its holder dies.  On NFS,
Lustre or GPFS it may hold only within one node, or not at all, so two nodes sharing a
directory could both believe they hold it.  A claim file works wherever ``link()`` is atomic,
which NFS guarantees even where ``O_EXCL`` was not (NFSv2):

* **The file.**  ``<name>`` holds one JSON record: host, pid, an opaque node identity, a random
  nonce, a generation number, when the claim was taken, its heartbeat (wall-clock seconds) and
  ``stale_after``, the seconds after the last heartbeat from which the holder itself gives up
  the claim.  Each record is written whole to a private temp file and then linked or renamed
  into place, so a reader never sees half a record.
* **Taking a free claim.**  When ``<name>`` does not exist: ``link(tmp, <name>)``.  ``link``
  fails with ``EEXIST`` for all but one of any number of simultaneous takers.  (Over NFS a
  lost reply can make a successful ``link`` report an error; the temp file's link count then
  says the truth, as ``open(2)`` advises.)
* **Taking over a stale claim.**  A claim is stale when it was released, when its heartbeat
  is older than its own ``stale_after``, or when its holder is on this very node (same host,
  boot and pid namespace) and its pid is gone.  A taker that judged generation ``g`` stale
  first creates the ticket ``<name>.<g+1>.takeover`` by ``link`` -- exclusive, so of two
  takers of the same stale claim exactly one gets the ticket -- then re-reads ``<name>``, and
  only if it is still generation ``g`` and still stale renames its own record (generation
  ``g+1``) over it and removes the ticket.  The loser of the ticket does nothing and looks
  again.  Generations only grow (a release leaves the file, marked released), so a ticket
  name is never reused for another claim.  A ticket whose taker died before renaming is
  skipped once older than the timeout: the next taker tries ``g+2``.
* **Holding.**  The holder rewrites its record with a fresh heartbeat every ``stale_after/4``
  seconds and checks that the record is still its own; if not, it has lost the claim (it was
  frozen longer than ``stale_after``, and another took over) and must stop.  This is the one
  window every lease has: a holder frozen past its timeout overlaps its successor until its
  next heartbeat, which is why the timeout is many heartbeats long.

Heartbeats compare wall clocks of different nodes, so the nodes' clocks must agree to well
within ``stale_after`` (NTP keeps them within milliseconds).  :data:`TIMEOUT_ENV` sets
``stale_after`` for the claims this process takes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from controller.system.atomic import atomic_write_text, temp_name
from controller.system.processes import process_alive

log = logging.getLogger("modelsync.claim")

TIMEOUT_ENV = "MODELSYNC_CLAIM_TIMEOUT"  # seconds without a heartbeat before a claim is stale
DEFAULT_STALE_AFTER = 30.0
# How long a taker keeps looking while another taker is in the middle of a takeover (a few
# file operations) before it reports the claim as held.
_SETTLE_SECONDS = 2.0
_SETTLE_POLL = 0.05


def stale_after_from_env(env: Mapping[str, str] | None = None) -> float:
    """The claim timeout this process uses: :data:`TIMEOUT_ENV` if set and positive."""
    value = (os.environ if env is None else env).get(TIMEOUT_ENV, "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_STALE_AFTER
    return seconds if seconds > 0 else DEFAULT_STALE_AFTER


def this_node() -> str:
    """Who can judge a pid: the same host, kernel boot and pid namespace.

    A hostname alone is not enough: two containers on one machine may share it and still not
    see each other's processes, and a pid that looks gone from one would be alive in the other.
    """
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "|".join(parts)


@dataclass(frozen=True)
class Holder:
    """One claim record, as written in the claim file."""

    host: str
    pid: int
    node: str
    nonce: str
    generation: int
    started_at: float
    heartbeat: float
    stale_after: float
    released: bool = False
    about: dict[str, str] = field(default_factory=dict)  # what the holder wants others told

    def stale(self, now: float, node: str) -> bool:
        if self.released or now - self.heartbeat > self.stale_after:
            return True
        return self.node == node and not process_alive(self.pid)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Holder:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a claim record is a JSON object")
        about = data.get("about", {})
        return cls(
            host=str(data["host"]),
            pid=int(data["pid"]),
            node=str(data["node"]),
            nonce=str(data["nonce"]),
            generation=int(data["generation"]),
            started_at=float(data["started_at"]),
            heartbeat=float(data["heartbeat"]),
            stale_after=float(data["stale_after"]),
            released=bool(data.get("released", False)),
            about={str(k): str(v) for k, v in about.items()} if isinstance(about, dict) else {},
        )


class Held(Exception):
    """Another live process holds the claim."""

    def __init__(self, path: Path, holder: Holder) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path} is held by pid {holder.pid} on {holder.host}")


class ClaimFile:
    """One process's claim on ``path`` (see the module's docstring for the protocol)."""

    def __init__(
        self,
        path: Path,
        *,
        stale_after: float | None = None,
        about: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.stale_after = stale_after_from_env() if stale_after is None else stale_after
        self.about = dict(about or {})
        self.node = this_node()
        self.nonce = uuid.uuid4().hex
        self.generation = 0  # of the record this process wrote; 0: none yet
        self.started_at = 0.0
        self.lost = threading.Event()  # set when another process took the claim from us
        self._renewer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._write = threading.Lock()

    # ----------------------------------------------------------------- taking

    def take(self) -> None:
        """Hold the claim, or raise :class:`Held` naming the live holder (never wait for it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        settle_until = time.monotonic() + _SETTLE_SECONDS
        while True:
            current = self.read()
            if current is None:
                if self._create_first():
                    return
                continue  # another taker created it first: judge theirs
            if not current.stale(time.time(), self.node):
                raise Held(self.path, current)
            if self._take_over(current):
                return
            # Another taker is between its ticket and its rename: its record shows in a moment.
            if time.monotonic() > settle_until:
                raise Held(self.path, current)
            time.sleep(_SETTLE_POLL)

    def read(self) -> Holder | None:
        """The record in the claim file; None when there is none.  A record that cannot be
        read (a damaged file) counts as generation 0, released: any taker may replace it."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return Holder.from_json(text)
        except (ValueError, KeyError, TypeError):
            log.warning("%s is not a claim record; it is replaced", self.path)
            return Holder("?", 0, "?", "", 0, 0.0, 0.0, 0.0, released=True)

    def _record(self, generation: int) -> Holder:
        now = time.time()
        return Holder(
            host=socket.gethostname(),
            pid=os.getpid(),
            node=self.node,
            nonce=self.nonce,
            generation=generation,
            started_at=self.started_at or now,
            heartbeat=now,
            stale_after=self.stale_after,
            about=dict(self.about),
        )

    def _create_first(self) -> bool:
        record = self._record(1)
        if not _create_exclusive(self.path, record.to_json()):
            return False
        self.generation, self.started_at = 1, record.started_at
        return True

    def _take_over(self, stale: Holder) -> bool:
        generation = stale.generation + 1
        while True:
            ticket = self._ticket(generation)
            if _create_exclusive(ticket, self.nonce + "\n"):
                break
            age = _age(ticket)
            if age is None:
                continue  # its taker just finished: try the same ticket again
            if age <= (stale.stale_after or self.stale_after):
                return False  # a live taker holds this ticket
            generation += 1  # its taker died mid-takeover: the next generation's ticket
        try:
            again = self.read()
            if again is None or again.nonce != stale.nonce or again.generation != stale.generation:
                return False
            if not again.stale(time.time(), self.node):
                return False  # its holder came back to life between the two reads
            record = self._record(generation)
            atomic_write_text(self.path, record.to_json())
            self.generation, self.started_at = generation, record.started_at
            log.info(
                "took over the stale claim %s of pid %d on %s", self.path, stale.pid, stale.host
            )
            # Leftovers: the predecessor's own ticket, and any abandoned by takers that died.
            for leftover in range(stale.generation, generation):
                with contextlib.suppress(FileNotFoundError):
                    self._ticket(leftover).unlink()
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                ticket.unlink()

    def _ticket(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{generation}.takeover")

    # ----------------------------------------------------------------- holding

    def mine(self) -> bool:
        current = self.read()
        return current is not None and current.nonce == self.nonce and not current.released

    def renew(self, **about: str) -> bool:
        """Write a fresh heartbeat (and ``about``); False when the claim is no longer ours."""
        with self._write:
            self.about.update(about)
            if not self.mine():
                self.lost.set()
                return False
            atomic_write_text(self.path, self._record(self.generation).to_json())
            return True

    @contextlib.contextmanager
    def renewed(self) -> Iterator[ClaimFile]:
        """Keep the heartbeat going in a thread while the block runs; :attr:`lost` is set if
        the claim was taken away meanwhile."""
        self._stopping.clear()
        self._renewer = threading.Thread(
            target=self._keep_renewing, name=f"claim {self.path.name}", daemon=True
        )
        self._renewer.start()
        try:
            yield self
        finally:
            self._stopping.set()
            self._renewer.join()
            self._renewer = None

    def _keep_renewing(self) -> None:
        interval = self.stale_after / 4
        last_success = time.monotonic()
        while not self._stopping.wait(interval):
            try:
                if not self.renew():
                    log.error("the claim %s was taken over by another process", self.path)
                    return
                last_success = time.monotonic()
            except OSError as e:  # a file server that does not answer: try again
                log.warning("cannot renew the claim %s: %s", self.path, e.strerror or e)
                if time.monotonic() - last_success > self.stale_after:
                    self.lost.set()  # others may already judge it stale
                    return

    def release(self) -> None:
        """Mark the claim released (the file stays: generations never repeat).

        Never raises: a release often runs while another error is on its way out (a full
        disk), and a claim that could not be marked is free anyway once its heartbeat is stale.
        """
        with self._write:
            try:
                current = self.read()
                if current is None or current.nonce != self.nonce:
                    return
                atomic_write_text(self.path, replace(current, released=True).to_json())
            except OSError as e:
                log.warning(
                    "cannot release the claim %s (%s); it is free once %g s old",
                    self.path,
                    e.strerror or e,
                    self.stale_after,
                )


# --------------------------------------------------------------------------- helpers


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` with ``text``, whole, unless it exists: ``link`` of a private temp file."""
    tmp = temp_name(path)
    tmp.write_text(text, encoding="utf-8")
    try:
        try:
            os.link(tmp, path)
        except OSError as e:
            # A retransmitted NFS link whose first try succeeded answers EEXIST or another
            # error; the temp file then has a second name, which the link count shows.
            if os.stat(tmp).st_nlink == 2:
                return True
            if e.errno == errno.EEXIST:
                return False
            raise
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _age(path: Path) -> float | None:
    """Seconds since ``path`` was written; None when it is gone."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None

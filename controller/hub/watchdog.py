"""The low-speed watchdog: a transfer slower than a floor over a whole window is cut.

A hub (or a proxy, a CDN edge) that sends a few bytes a second never trips a read timeout,
which only measures the silence between two reads: a 12 MiB file at 100 B/s would take 35
hours.  curl's ``--speed-limit/--speed-time`` is the known cure, and this is it: the bytes
received are counted over consecutive windows, and a window that ends below the floor cuts
the transfer with a transient :class:`~controller.hub.errors.HubError`, so the retry
continues from the bytes on disk over a new connection (a stalled path is usually one
connection's, not the hub's).  Each cut is logged and counted (:func:`cuts`).

The defaults (:data:`DEFAULT_FLOOR`: 1 kB/s over 30 s) cut a trickle within half a minute,
yet leave alone any link that is merely slow: even a congested 1 Mbit/s line shared by eight
downloads gives each about 15 kB/s, and TCP's recovery from a loss takes seconds, not 30.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from controller.domain import Reason
from controller.domain.units import human_bytes
from controller.hub.errors import HubError

log = logging.getLogger("modelsync.transfer")


class Transfer(str, Enum):
    """What a watchdog watches: a file's body, or the hub's answer about a revision."""

    FILE = "file"
    REVISION = "revision"


_cuts = dict.fromkeys(Transfer, 0)
_cuts_lock = threading.Lock()


@dataclass(frozen=True)
class SpeedFloor:
    """``bytes_per_second`` averaged over ``window`` seconds; 0 turns the watchdog off."""

    bytes_per_second: int = 1000
    window: float = 30.0

    def __post_init__(self) -> None:
        if self.bytes_per_second < 0 or self.window <= 0:
            raise ValueError("a speed floor needs a rate >= 0 and a window > 0 seconds")

    @property
    def enabled(self) -> bool:
        return self.bytes_per_second > 0

    def describe(self) -> str:
        return f"{human_bytes(self.bytes_per_second)}/s over {self.window:g} s"


DEFAULT_FLOOR = SpeedFloor()


class Watchdog:
    """Counts one transfer's bytes and raises once a whole window stayed below the floor.

    Bytes a transfer does not wait for (a resumed prefix) are never counted; the window
    starts when the request is sent, so a hub slow to answer at all is judged too.
    """

    def __init__(
        self,
        floor: SpeedFloor,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        *,
        kind: Transfer = Transfer.FILE,
    ) -> None:
        self.floor = floor
        self.what = what
        self.kind = kind
        self._clock = clock
        self._started = clock()
        self._bytes = 0

    def passed(self, count: int) -> None:
        """``count`` more bytes arrived; raises :class:`HubError` if the window just ended
        below the floor."""
        if not self.floor.enabled:
            return
        self._bytes += count
        now = self._clock()
        elapsed = now - self._started
        if elapsed < self.floor.window:
            return
        if self._bytes < self.floor.bytes_per_second * elapsed:
            raise self._cut(elapsed)
        self._started, self._bytes = now, 0

    def silent(self, seconds: float) -> HubError:
        """The error for a connection that sent nothing for ``seconds``, a window or more:
        a hang is a trickle of zero bytes, and is cut and counted as one."""
        return self._cut(max(seconds, self._clock() - self._started))

    def _cut(self, elapsed: float) -> HubError:
        with _cuts_lock:
            _cuts[self.kind] += 1
        rate = self._bytes / elapsed if elapsed > 0 else 0.0
        then = "resume" if self.kind is Transfer.FILE else "ask again"
        message = (
            f"{self.what}: {human_bytes(int(rate))}/s for {elapsed:.0f} s, below the floor of "
            f"{self.floor.describe()}; cut, to {then} over a new connection"
        )
        log.warning("%s", message)
        # A revision nobody could read is a hub out of reach: the last answer still stands.
        reason = Reason.DOWNLOAD_FAILED if self.kind is Transfer.FILE else Reason.HUB_UNREACHABLE
        return HubError(reason, message, transient=True)


def cuts(kind: Transfer | None = None) -> int:
    """Transfers (of ``kind``, or of any) this process cut for being too slow, since it
    started."""
    with _cuts_lock:
        return sum(_cuts.values()) if kind is None else _cuts[kind]


def cuts_by_kind() -> dict[Transfer, int]:
    """Every kind, 0 until its first cut."""
    with _cuts_lock:
        return dict(_cuts)

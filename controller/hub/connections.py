"""The process's budget of download connections, shared by every file it fetches.

``spec.downloads.concurrency`` bounds the files fetched at once; a large file fetched as byte
ranges opens *extra* connections, and those come out of the same total: a file gets one only
while fewer than ``total`` connections are open, and never more than its fair share (the total
split evenly among the files downloading) once others are waiting for room.  Every file's own
first connection is always granted, so a small file never queues behind a large one's ranges;
a large file that holds more than its share gives extra connections back between pieces.
"""

from __future__ import annotations

import threading
from collections import Counter

DEFAULT_TOTAL = 8  # spec.downloads.concurrency's default


class ConnectionBudget:
    """Thread-safe counts of open connections, per file and in all."""

    def __init__(self, total: int = DEFAULT_TOTAL) -> None:
        self._lock = threading.Lock()
        self._total = max(1, total)
        self._held: Counter[object] = Counter()

    @property
    def total(self) -> int:
        return self._total

    def resize(self, total: int) -> None:
        """A new total (the manifests changed); connections already open stay open."""
        with self._lock:
            self._total = max(1, total)

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._held.values())

    def first(self, holder: object) -> None:
        """``holder``'s own connection: always granted, and counted."""
        with self._lock:
            self._held[holder] += 1

    def extra(self, holder: object) -> bool:
        """Whether ``holder`` may open one more connection now (and, if so, it is counted)."""
        with self._lock:
            if sum(self._held.values()) >= self._total or self._held[holder] >= self._share():
                return False
            self._held[holder] += 1
            return True

    def keep(self, holder: object) -> bool:
        """Whether ``holder`` may keep an extra connection for another piece: not while the
        budget is spent and it holds more than its share (another file needs the room)."""
        with self._lock:
            spent = sum(self._held.values()) >= self._total
            return not (spent and self._held[holder] > self._share())

    def release(self, holder: object) -> None:
        with self._lock:
            self._held[holder] -= 1
            if self._held[holder] <= 0:
                del self._held[holder]

    def _share(self) -> int:
        return max(1, self._total // max(1, len(self._held)))


SHARED = ConnectionBudget()

"""Transfer progress for ``reconcile --apply``: bars on a terminal, plain lines otherwise.

On a terminal the bars of the models being fetched are redrawn in place a few times a
second, and a model's bar is left behind once it is complete.  Anywhere else (cron, CI,
journald) redrawing makes no sense: a line per model every :data:`LINE_SECONDS`, and one when
it is complete, is what a log reader wants.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from controller.domain.progress import ModelProgress, Snapshot, describe
from controller.domain.units import human_bytes

BAR_SECONDS = 0.2  # redraw interval on a terminal
LINE_SECONDS = 10.0  # interval between log lines of one model elsewhere
BAR_WIDTH = 24


class ProgressDisplay:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = BAR_SECONDS if self.tty else 1.0
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._drawn = 0  # bar lines currently on screen (tty)
        self._last_line: dict[str, float] = {}  # model -> when its last line was printed
        self._finished: set[str] = set()

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            if self.tty:
                self._draw(snapshot)
            else:
                self._lines(snapshot)
            self.stream.flush()

    def close(self) -> None:
        """Leave the screen as plain text (bars of unfinished models stay as they were)."""
        with self._lock:
            self._drawn = 0

    def _draw(self, snapshot: Snapshot) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F")  # back to the first bar
        done = {n: p for n, p in snapshot.items() if p.fraction >= 1 and n not in self._finished}
        running = {n: p for n, p in snapshot.items() if p.fraction < 1}
        width = max((len(n) for n in snapshot), default=0)
        # Finished bars are written first and scroll up out of the redrawn area for good.
        for name, p in done.items():
            self.stream.write(f"\x1b[2K{self._bar(name, p, width)}\n")
            self._finished.add(name)
        for name, p in running.items():
            self.stream.write(f"\x1b[2K{self._bar(name, p, width)}\n")
        for _ in range(self._drawn - len(done) - len(running)):
            self.stream.write("\x1b[2K\n")  # clear what an earlier, longer draw left below
        self._drawn = max(len(running), self._drawn - len(done))

    @staticmethod
    def _bar(name: str, p: ModelProgress, width: int) -> str:
        filled = int(BAR_WIDTH * p.fraction)
        return f"{name.ljust(width)} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {describe(p)}"

    def _lines(self, snapshot: Snapshot) -> None:
        now = self._monotonic()
        for name, p in snapshot.items():
            if name in self._finished:
                continue
            if p.fraction >= 1:
                self._finished.add(name)
                self.stream.write(
                    f"{name}: fetched {human_bytes(p.bytes_total)} ({p.files_total} files)\n"
                )
            elif now - self._last_line.get(name, float("-inf")) >= LINE_SECONDS:
                self._last_line[name] = now
                self.stream.write(f"{name}: {describe(p)}\n")

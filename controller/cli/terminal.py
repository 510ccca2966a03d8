"""Progress for people: bars on a terminal, plain lines otherwise.

``reconcile --apply`` shows each model's transfer (:class:`ProgressDisplay`); ``reconcile
verify`` shows the hashing of what is on disk (:class:`HashingProgress`).  On a terminal the
bars are drawn by rich in one live region, redrawn in place; a model leaves the region once
its transfer is complete, and its line is printed above the bars still running.  Anywhere
else (cron, CI, journald) redrawing makes no sense: a transfer writes a line per model every
:data:`LINE_SECONDS`, and one when it is complete, which is what a log reader wants; hashing
writes nothing, the summary that follows says it all.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from controller.domain.progress import ModelProgress, Snapshot, describe
from controller.domain.units import human_bytes, plural

BAR_SECONDS = 0.2  # redraw interval on a terminal
LINE_SECONDS = 10.0  # interval between log lines of one model elsewhere
BAR_WIDTH = 24

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def _bars(stream: TextIO, width: int) -> Progress:
    """A live region of bars: name, bar, and modelsync's own description of the work (the
    tracker measures throughput and time left over its window, so rich's are not used).

    rich is imported here, on a terminal only: elsewhere (CI, cron, a pipe) a command never
    draws, and importing rich was a tenth of its start-up."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    return Progress(
        # Not markup: a model's name is the manifest's, brackets and all.
        TextColumn("{task.description}", markup=False),
        BarColumn(bar_width=width),
        TextColumn("{task.fields[text]}", markup=False),
        console=Console(file=stream, force_terminal=True, highlight=False),
        # Redrawn when told: the caller already paces its calls, and no thread of rich's
        # outlives the command.
        auto_refresh=False,
        # The streams are left alone: the plan and the log keep going where they went.
        redirect_stdout=False,
        redirect_stderr=False,
    )


def _finished(name: str, p: ModelProgress) -> str:
    # What is on disk now, not "fetched": resumed partials and files linked from cached
    # blobs count here but crossed no network, and the result says what was transferred.
    return f"{name}: {plural(p.files_total, 'file')}, {human_bytes(p.bytes_total)} on disk"


class ProgressDisplay:
    """Hears a :class:`~controller.engine.progress.ProgressTracker`'s snapshots."""

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
        self._progress: Progress | None = None  # started with the first bar (tty)
        self._tasks: dict[str, TaskID] = {}  # models with a bar in the region (tty)
        self._last_line: dict[str, float] = {}  # model -> when its last line was printed
        self._done: set[str] = set()

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
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            self._tasks.clear()

    def _draw(self, snapshot: Snapshot) -> None:
        if self._progress is None:
            self._progress = _bars(self.stream, BAR_WIDTH)
            self._progress.start()
        bars = self._progress
        finished = []
        for name, p in snapshot.items():
            if name in self._done:
                continue
            if p.fraction >= 1:
                self._done.add(name)
                finished.append(_finished(name, p))
                if name in self._tasks:
                    bars.remove_task(self._tasks.pop(name))
                continue
            task = self._tasks.get(name)
            if task is None:
                self._tasks[name] = bars.add_task(
                    name, total=p.bytes_total, completed=p.bytes_done, text=describe(p)
                )
            else:
                # The tracker's totals can grow as a model's files are announced.
                bars.update(task, total=p.bytes_total, completed=p.bytes_done, text=describe(p))
        # Redrawn before the finished lines are printed above it: printing repeats the region
        # as last drawn, which must no longer hold their bars.
        bars.refresh()
        for line in finished:
            bars.console.print(line, markup=False)

    def _lines(self, snapshot: Snapshot) -> None:
        now = self._monotonic()
        for name, p in snapshot.items():
            if name in self._done:
                continue
            if p.fraction >= 1:
                self._done.add(name)
                self.stream.write(_finished(name, p) + "\n")
            elif now - self._last_line.get(name, float("-inf")) >= LINE_SECONDS:
                self._last_line[name] = now
                self.stream.write(f"{name}: {describe(p)}\n")


class HashingProgress:
    """The progress of ``reconcile verify``'s hashing, called with (bytes done, bytes in
    all): one bar on a terminal, nothing elsewhere.  Use it as a context manager, so that
    the bar is finished however verify ends."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.tty or total == 0:
            return
        text = f"{100 * done / total:5.1f}% of {human_bytes(total)}"
        if self._progress is None or self._task is None:
            self._progress = _bars(self.stream, 30)
            self._progress.start()
            self._task = self._progress.add_task("verifying", total=total, text=text)
        self._progress.update(self._task, total=total, completed=done, text=text)
        self._progress.refresh()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()  # the bar stays as the last line drawn
            self._progress = None

    def __enter__(self) -> HashingProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

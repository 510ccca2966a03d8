"""Transfer progress of each model and file: bytes, throughput and time left.

Downloads report the bytes each file has on disk (:data:`controller.hub.transfer.Progress`); the
tracker folds them into one :class:`ModelProgress` per model and hands snapshots to its
listeners -- the status file, the event stream, a terminal's bars -- each at its own pace,
from whichever download thread crosses the listener's interval.  Nothing runs while nothing
moves, so an idle controller spends nothing here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from controller.domain.progress import FileProgress, ModelProgress, RateMeter, Snapshot, eta


@dataclass
class _Model:
    sizes: dict[str, int] = field(default_factory=dict)  # path -> size, files to fetch
    done: dict[str, int] = field(default_factory=dict)  # path -> bytes on disk
    meter: RateMeter = field(default_factory=RateMeter)
    # Running sums, so that an update costs the same for a model of one file or a thousand.
    total: int = 0
    counted: int = 0  # bytes on disk, each file counted up to its size

    def expect(self, path: str, size: int) -> None:
        before = self.sizes.get(path)
        if before is not None:
            self.total -= before
            self.counted -= min(self.done.get(path, 0), before)
        self.sizes[path] = size
        self.total += size
        self.counted += min(self.done.get(path, 0), size)

    def record(self, path: str, done: int) -> int:
        """Note ``done`` bytes on disk for ``path``; returns the bytes newly received."""
        size = self.sizes.get(path)
        if size is None:
            self.expect(path, done)
            size = done
        before = self.done.get(path)
        self.done[path] = done
        self.counted += min(done, size) - min(before or 0, size)
        # The first report of a file is the partial it resumes, not bytes received now.
        return done - before if before is not None and done > before else 0

    @property
    def complete(self) -> bool:
        return self.counted >= self.total


@dataclass
class _Listener:
    callback: Callable[[Mapping[str, ModelProgress]], None]
    every: float
    last: float = float("-inf")


class ProgressTracker:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._models: dict[str, _Model] = {}
        self._listeners: list[_Listener] = []
        self._received: dict[str, int] = {}  # bytes received per model since start

    def listen(self, callback: Callable[[Snapshot], None], *, every: float) -> Callable[[], None]:
        """Call ``callback`` with a snapshot at most every ``every`` seconds while bytes
        move, and when a model's last expected byte arrives; returns the un-register."""
        listener = _Listener(callback, every)
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def expect(self, model: str, files: Iterable[tuple[str, int]]) -> None:
        """``model`` is about to fetch ``files`` ((path, size) pairs)."""
        with self._lock:
            entry = self._models.setdefault(model, _Model())
            for path, size in files:
                entry.expect(path, size)

    def file(self, model: str, path: str) -> Callable[[int, int], None]:
        """The progress callback for one file's transfer."""
        return lambda done, total: self.update(model, path, done, total)

    def update(self, model: str, path: str, done: int, total: int) -> None:
        now = self._monotonic()
        with self._lock:
            entry = self._models.setdefault(model, _Model())
            if path not in entry.sizes:
                entry.expect(path, total)
            was_complete = entry.complete
            received = entry.record(path, done)
            entry.meter.add(now, received)
            self._received[model] = self._received.get(model, 0) + received
            finished = entry.complete and not was_complete
            due = [each for each in self._listeners if now - each.last >= each.every]
            for listener in due:
                listener.last = now
            # A listener not yet due hears of a completion at once, but of that model
            # alone: a snapshot of every model tracked on each completion would make a
            # pass of many small models quadratic in the models under way.
            told = [each for each in self._listeners if each not in due] if finished else []
            alone = {model: _progress(entry, now)} if told else {}
        if due:
            snapshot = self.snapshot()
            for listener in due:
                listener.callback(snapshot)
        for listener in told:
            listener.callback(alone)

    def retain(self, models: Iterable[str]) -> None:
        """Forget every model but ``models`` (those still transferring)."""
        keep = set(models)
        with self._lock:
            for name in [m for m in self._models if m not in keep]:
                del self._models[name]

    def snapshot(self) -> dict[str, ModelProgress]:
        now = self._monotonic()
        with self._lock:
            return {name: _progress(entry, now) for name, entry in self._models.items()}

    def received(self) -> dict[str, int]:
        """Bytes received per model since the tracker was made (a counter for metrics)."""
        with self._lock:
            return dict(self._received)


def _progress(entry: _Model, now: float) -> ModelProgress:
    total, done = entry.total, entry.counted
    rate = entry.meter.rate(now)
    moving = tuple(
        FileProgress(path=p, bytes_done=entry.done[p], bytes_total=size)
        for p, size in sorted(entry.sizes.items())
        if p in entry.done and entry.done[p] < size
    )
    return ModelProgress(
        bytes_done=done,
        bytes_total=total,
        files_done=sum(1 for p, size in entry.sizes.items() if entry.done.get(p, -1) >= size),
        files_total=len(entry.sizes),
        bytes_per_second=None if rate is None else round(rate, 1),
        eta_seconds=None if (left := eta(total - done, rate)) is None else round(left, 1),
        files=moving,
    )

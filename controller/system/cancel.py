"""Stopping work at a safe point: the whole pass (shutdown) or one model's work (suspend).

The long-running controller has to stop a download when its model is suspended or paused,
and everything when it is told to terminate, without losing what is on disk.  The safe
points are between chunks of a transfer and between files: a partial file is always a
verified-so-far prefix there, so the next attempt resumes it.  Hashing a file also stops
between chunks (a 50 GB shard takes tens of seconds); the file then stays unverified.

A transfer blocked in a socket read would only notice at its next chunk, which on a held or
stalled connection can be the read timeout away; so work registers a *wake-up* (shutting its
socket down) that runs the moment its stop is asked for.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


class Cancelled(Exception):
    """Work stopped because it was asked to; what it completed (and its partials) is kept."""


class StopSignal:
    """Asks one reconcile pass to stop: all of it, or the work of some models."""

    def __init__(self) -> None:
        # Re-entrant: Ctrl-C's handler asks for the stop on the main thread, which may be
        # inside one of these methods (holding the lock) when the signal arrives.
        self._lock = threading.RLock()
        self._all = False
        self._models: set[str] = set()
        self._wakeups: dict[int, tuple[str, Callable[[], None]]] = {}
        self._next_id = 0

    def stop_all(self) -> None:
        self._fire(lambda model: True, everything=True)

    def stop_model(self, model: str) -> None:
        self._fire(lambda name: name == model, model=model)

    def stopped(self, model: str) -> bool:
        with self._lock:
            return self._all or model in self._models

    @property
    def all_stopped(self) -> bool:
        with self._lock:
            return self._all

    def for_model(self, model: str) -> ModelStop:
        return ModelStop(self, model)

    @contextlib.contextmanager
    def waking(self, model: str, wake: Callable[[], None]) -> Iterator[None]:
        """Run ``wake`` if ``model``'s work is asked to stop while the block runs (at once
        when it already was)."""
        with self._lock:
            key = self._next_id
            self._next_id += 1
            self._wakeups[key] = (model, wake)
            already = self._all or model in self._models
        try:
            if already:
                wake()
            yield
        finally:
            with self._lock:
                self._wakeups.pop(key, None)

    def _fire(
        self, matches: Callable[[str], bool], *, everything: bool = False, model: str = ""
    ) -> None:
        with self._lock:
            if everything:
                self._all = True
            else:
                self._models.add(model)
            wakeups = [wake for name, wake in self._wakeups.values() if matches(name)]
        # Outside the lock: a wake-up may take a moment (a socket shutdown) and must not
        # block other threads asking whether they should stop.
        for wake in wakeups:
            with contextlib.suppress(Exception):
                wake()


class ModelStop:
    """One model's view of a :class:`StopSignal`, handed to the transfer of its files."""

    def __init__(self, signal: StopSignal, model: str) -> None:
        self.signal = signal
        self.model = model

    def requested(self) -> bool:
        return self.signal.stopped(self.model)

    def check(self) -> None:
        """Raise :class:`Cancelled` when this model's work is asked to stop."""
        if self.signal.stopped(self.model):
            raise Cancelled(f"{self.model}: stopped on request")

    def waking(self, wake: Callable[[], None]) -> contextlib.AbstractContextManager[None]:
        return self.signal.waking(self.model, wake)

"""The workspace's file workers: a fixed number of threads that run the waiting task of the
model earliest in priority order first.

A pass has more models under way than connections (a small model's bookkeeping -- its ref,
the syncs of its directories, its records -- then overlaps other models' transfers), so
several models queue files at once.  A first-come queue would serve them in whatever order
their threads happened to run; this one serves them by the models' places in the plan, and
holds a model's work back until every model before it has asked for its own or ended
(:meth:`FilePool.done`), so downloads start in priority order even when a later model's
thread is quicker to ask.  The pool's size is the connection budget.  That order is a
preference, never a reason to stop: work held back longer than :data:`HOLD_AT_MOST_SECONDS`
runs anyway, so a model that is never heard from (a caller that breaks its promise) slows the
models after it down but cannot stall the pass.

Written here because the standard library's executors serve first come, first served, and
no well-kept library offers a thread pool ordered by a caller's key.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

# How long work may wait for the models before it: about what one model's first files take.
HOLD_AT_MOST_SECONDS = 5.0

T = TypeVar("T")
U = TypeVar("U")


@dataclass(order=True)
class _Task:
    rank: int
    seq: int  # first come first within one rank: a model's files keep their order
    queued_at: float = field(compare=False)  # time.monotonic()
    future: Future[Any] = field(compare=False)
    work: Callable[[], Any] = field(compare=False)


class FilePool:
    """``workers`` threads, started at the first task; :meth:`shutdown` ends them."""

    def __init__(
        self,
        workers: int,
        *,
        name: str = "modelsync-file",
        hold_at_most: float = HOLD_AT_MOST_SECONDS,
    ) -> None:
        self.workers = max(1, workers)
        self.hold_at_most = hold_at_most
        self._name = name
        self._ranks: dict[str, int] = {}
        self._heard: list[bool] = []  # by rank: the model asked for work, or ended
        self._next = 0  # the first rank not heard from: work ranked after it waits
        self._waiting: list[_Task] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def prioritize(self, models: Sequence[str]) -> None:
        """Serve ``models`` in this order (a plan's), each once all before it have asked for
        work or ended; the caller promises to start them in this order and to tell
        :meth:`done` of each.  Models not named come after them, held back by none."""
        with self._ready:
            self._ranks = {model: i for i, model in enumerate(models)}
            self._heard = [False] * len(self._ranks)
            self._next = 0

    def done(self, model: str) -> None:
        """``model`` will ask for no more work: the models after it need not wait for it."""
        with self._ready:
            self._hear(model)

    def submit(self, model: str, work: Callable[[], T]) -> Future[T]:
        return self.start(model, [work])[0]

    def start(self, model: str, works: Sequence[Callable[[], T]]) -> list[Future[T]]:
        """Queue ``works`` for ``model`` all at once: no other model's work slips in between."""
        futures: list[Future[T]] = [Future() for _ in works]
        with self._ready:
            if self._closed:
                raise RuntimeError("the file pool was shut down")
            self._hear(model)
            rank = self._ranks.get(model, len(self._ranks))
            now = time.monotonic()
            for future, work in zip(futures, works, strict=True):
                heapq.heappush(self._waiting, _Task(rank, next(self._seq), now, future, work))
            if not self._threads:
                self._start()
            self._ready.notify_all()
        return futures

    def map(self, model: str, work: Callable[[U], T], items: Iterable[U]) -> list[T]:
        """``work`` over ``items`` in the pool, results in their order."""
        return gather(self.start(model, [functools.partial(work, item) for item in items]))

    def shutdown(self) -> None:
        """Run what is queued, then end the workers (idempotent)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    def _start(self) -> None:
        for i in range(self.workers):
            thread = threading.Thread(target=self._serve, name=f"{self._name}_{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _hear(self, model: str) -> None:
        rank = self._ranks.get(model)
        if rank is None or self._heard[rank]:
            return
        self._heard[rank] = True
        while self._next < len(self._heard) and self._heard[self._next]:
            self._next += 1
        self._ready.notify_all()

    def _held_for(self) -> float | None:
        """How much longer the first waiting task is held back: 0 when it may start (every
        model ranked before its own has been heard from, it waited long enough, or the pool
        is closing and runs what is left); ``None`` when nothing waits."""
        if not self._waiting:
            return None
        task = self._waiting[0]
        if task.rank < self._next or task.rank >= len(self._heard) or self._closed:
            return 0.0
        return max(0.0, task.queued_at + self.hold_at_most - time.monotonic())

    def _serve(self) -> None:
        while True:
            with self._ready:
                while (held := self._held_for()) != 0.0 and not (
                    self._closed and not self._waiting
                ):
                    self._ready.wait(held)  # None: until work comes or the pool closes
                if not self._waiting:
                    return  # closed, and nothing left to run
                task = heapq.heappop(self._waiting)
            if not task.future.set_running_or_notify_cancel():
                continue
            try:
                result = task.work()
            except BaseException as e:  # handed to whoever waits on the future
                task.future.set_exception(e)
            else:
                task.future.set_result(result)


def gather(futures: Sequence[Future[T]]) -> list[T]:
    """The results of ``futures`` in their order.  The first failure is raised once the
    earlier ones are done, and those not started yet are dropped."""
    try:
        return [f.result() for f in futures]
    finally:
        for f in futures:
            f.cancel()  # a no-op for those done or running

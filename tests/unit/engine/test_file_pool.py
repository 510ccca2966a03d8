"""The workspace's file workers: work runs in the plan's order of models, whichever model
asks first, and never more of it at once than the pool has workers."""

from __future__ import annotations

import functools
import threading
import time

import pytest

from controller.engine.file_pool import FilePool, gather

DEADLINE_S = 10.0


def test_a_models_work_waits_until_every_model_before_it_has_asked_or_ended() -> None:
    pool = FilePool(1)
    pool.prioritize(["first", "second", "third"])
    ran: list[str] = []
    try:
        # The last model asks first: nothing of it may start while the models before it
        # have not been heard from (a free worker would otherwise take it at once).
        late = pool.start("third", [lambda: ran.append("third")])
        with pytest.raises(TimeoutError):
            late[0].result(timeout=0.3)
        second = pool.start(
            "second", [lambda: ran.append("second.a"), lambda: ran.append("second.b")]
        )
        assert not any(f.done() for f in (*late, *second))
        pool.done("first")  # ended without asking for anything

        for f in (*second, *late):
            f.result(timeout=DEADLINE_S)
    finally:
        pool.shutdown()
    assert ran == ["second.a", "second.b", "third"]


def test_a_model_never_heard_from_delays_the_ones_after_it_but_cannot_stall_them() -> None:
    pool = FilePool(1, hold_at_most=0.5)
    pool.prioritize(["silent", "waiting"])
    try:
        started = time.monotonic()
        waiting = pool.submit("waiting", lambda: time.monotonic())
        ran_at = waiting.result(timeout=DEADLINE_S)  # "silent" never asks nor ends
    finally:
        pool.shutdown()
    assert ran_at - started >= 0.5


def test_waiting_work_runs_by_the_models_places_in_the_plan() -> None:
    pool = FilePool(1)
    pool.prioritize(["a", "b", "c"])
    release = threading.Event()
    ran: list[str] = []
    try:
        # The one worker is kept busy by `a` while `c`, then `b`, queue behind it.
        busy = pool.submit("a", lambda: release.wait(DEADLINE_S))
        queued = [
            *pool.start("c", [lambda: ran.append("c")]),
            pool.submit("b", lambda: ran.append("b")),
        ]
        release.set()
        assert busy.result(timeout=DEADLINE_S) is True
        for f in queued:
            f.result(timeout=DEADLINE_S)
    finally:
        pool.shutdown()
    assert ran == ["b", "c"]


def test_no_more_work_runs_at_once_than_the_pool_has_workers() -> None:
    pool = FilePool(2)
    lock = threading.Lock()
    running, most = 0, 0
    go = threading.Event()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        go.wait(DEADLINE_S)
        with lock:
            running -= 1

    try:
        futures = pool.start("m", [work] * 6)
        deadline = time.monotonic() + DEADLINE_S
        while most < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the workers' state with a deadline, not a sleep as sync
        go.set()
        gather(futures)
    finally:
        pool.shutdown()
    assert most == 2


def test_a_failure_reaches_the_caller_and_work_not_started_is_dropped() -> None:
    pool = FilePool(1)
    ran: list[int] = []
    started, finish = threading.Event(), threading.Event()

    def work(i: int) -> int:
        if i == 1:
            raise ValueError("broken file")
        if i == 2:  # running when the caller hears of the failure: it is let finish
            started.set()
            finish.wait(DEADLINE_S)
        ran.append(i)
        return i

    try:
        futures = pool.start("m", [functools.partial(work, i) for i in range(4)])
        with pytest.raises(ValueError, match="broken file"):
            gather(futures)
        assert futures[2].cancelled() or started.wait(DEADLINE_S)
        finish.set()
    finally:
        pool.shutdown()
    assert futures[3].cancelled() and 3 not in ran and ran[0] == 0


def test_the_results_keep_the_order_of_the_work() -> None:
    pool = FilePool(3)
    try:
        assert pool.map("m", lambda i: i * i, range(20)) == [i * i for i in range(20)]
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit("m", lambda: None)

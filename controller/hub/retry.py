"""When to try a step of a download again: exponential backoff with full jitter."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from controller.hub.revisions import HubError
from controller.system.cancel import ModelStop

_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: exponential backoff with full jitter, or what the server asks.

    ``attempts`` counts tries of one step (the HEAD, or the body) without progress: a body
    that keeps arriving in pieces resets the count, so a flaky link still finishes a 30 GB
    file.  Full jitter (a uniform wait up to the exponential bound) spreads out the retries of
    many nodes that lost the same mirror at the same moment.
    """

    attempts: int = 6
    base: float = 1.0  # seconds; the bound of the first wait
    cap: float = 30.0  # seconds; no wait bound grows beyond this
    max_retry_after: float = 60.0  # a server's Retry-After is honoured up to this many seconds

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least one attempt")
        if min(self.base, self.cap, self.max_retry_after) < 0:
            raise ValueError("retry delays cannot be negative")

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        bound = min(self.cap, self.base * 2.0 ** (failures - 1))
        return random.uniform(0.0, bound)


DEFAULT_RETRY = RetryPolicy()


class Attempts:
    """Counts consecutive failures of one step and sleeps between attempts."""

    def __init__(self, policy: RetryPolicy, stop: ModelStop | None = None) -> None:
        self.policy = policy
        self.stop = stop
        self.failures = 0

    def progressed(self) -> None:
        self.failures = 0

    def until_done(
        self,
        step: Callable[[], _T],
        classify: Callable[[Exception], HubError],
        retried: tuple[type[Exception], ...],
    ) -> _T:
        """Run ``step`` until it returns; a failure of the ``retried`` kinds is classified,
        and waited out when it is transient, raised otherwise."""
        while True:
            try:
                return step()
            except retried as e:
                error = classify(e)
            if self.stop is not None:
                self.stop.check()  # the failure may be the stop's own doing (a shut socket)
            self._after(error)

    def _after(self, error: HubError) -> None:
        if not error.transient:
            raise error
        self.failures += 1
        if self.failures >= self.policy.attempts:
            raise HubError(
                error.reason,
                f"{error.message} (gave up after {self.failures} attempts)",
                transient=True,
            )
        self._wait(self.policy.delay(self.failures, error.retry_after))

    def _wait(self, seconds: float) -> None:
        if self.stop is None:
            time.sleep(seconds)
            return
        woken = threading.Event()
        with self.stop.waking(woken.set):
            woken.wait(seconds)
        self.stop.check()

"""``GET /healthz`` of a mirror: it is serving, and what its upstream was like when last asked.

A mirror serves what its directory holds whether or not the upstream answers, so the route
is 200 while the server runs; the upstream's state is in the body for people and dashboards.
That state is read off the mirror's own traffic (its revision look-ups, access checks and
fills), never by asking the upstream from the probe: a probe must answer at once, and a
slow upstream would make a healthy mirror look dead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class UpstreamState:
    """What the mirror last saw of its upstream, as times on the health's clock."""

    answered_at: float | None = None  # the last answer of any kind, a refusal included
    unreachable_at: float | None = None  # the last call it did not answer
    error_at: float | None = None  # the last failure: unreachable, or a failed fill
    error: str | None = None  # what that failure said (never a token: callers redact)

    @property
    def reachable(self) -> bool | None:
        """Whether the upstream answered the mirror's latest call; None before any."""
        if self.answered_at is None and self.unreachable_at is None:
            return None
        if self.unreachable_at is None:
            return True
        return self.answered_at is not None and self.answered_at > self.unreachable_at


class UpstreamHealth:
    """The upstream's state, updated by every request thread; read by ``/healthz``."""

    def __init__(self, endpoint: str, clock: Callable[[], float]) -> None:
        self.endpoint = endpoint
        self._clock = clock
        self._state = UpstreamState()
        self._lock = threading.Lock()

    @property
    def state(self) -> UpstreamState:
        with self._lock:
            return self._state

    def answered(self) -> None:
        with self._lock:
            self._state = replace(self._state, answered_at=self._clock())

    def unreachable(self, why: str) -> None:
        now = self._clock()
        with self._lock:
            self._state = replace(self._state, unreachable_at=now, error_at=now, error=why)

    def failed(self, why: str) -> None:
        """A failure of an upstream that answered (a fill that gave up, say)."""
        now = self._clock()
        with self._lock:
            self._state = replace(self._state, error_at=now, error=why)

    def report(self) -> dict[str, object]:
        """The body of ``/healthz``: ages in seconds, so no clock has to agree with ours."""
        state, now = self.state, self._clock()
        return {
            "status": "serving",
            "upstream": {
                "url": self.endpoint,
                "reachable": state.reachable,
                "last_answer_seconds_ago": _age(now, state.answered_at),
                "last_error_seconds_ago": _age(now, state.error_at),
                "last_error": state.error,
            },
        }


SERVING: dict[str, object] = {"status": "serving"}  # a read-only mirror: it has no upstream


def _age(now: float, at: float | None) -> float | None:
    return None if at is None else round(max(0.0, now - at), 1)

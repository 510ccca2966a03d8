"""Per-model backoff: a model whose apply fails waits before its next attempt.

A model that keeps failing (a repo that went private, a mirror that lost one file) must not
make every pass retry it at once, nor hold up the others: each failure doubles its wait, up
to a cap, and the loop leaves it out of passes until its next attempt is due.  Pure: times
are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.domain.status import Failure


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 30.0  # seconds before the second attempt
    cap: float = 3600.0  # no wait grows beyond this

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1, 2, ...)."""
        if failures < 1:
            return 0.0
        # min() before the power would overflow: 2**2000 is fine for ints, not for floats.
        return min(self.cap, self.base * 2.0 ** min(failures - 1, 64))


@dataclass(frozen=True)
class Backoff:
    failures: int  # failures in a row
    next_attempt: datetime
    failure: Failure  # the last one, reported while the model waits


class BackoffBook:
    """The models currently backing off; the watch loop's only owner of this state."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self._entries: dict[str, Backoff] = {}

    def record(
        self,
        now: datetime,
        *,
        failures: Mapping[str, Failure],
        succeeded: Iterable[str],
    ) -> None:
        """After a pass: each failed model waits longer, each model that succeeded is forgiven."""
        for model, failure in failures.items():
            count = self._entries[model].failures + 1 if model in self._entries else 1
            wait = timedelta(seconds=self.policy.delay(count))
            self._entries[model] = Backoff(count, now + wait, failure)
        for model in succeeded:
            self._entries.pop(model, None)

    def held(self, now: datetime) -> dict[str, Failure]:
        """Models to leave out of a pass at ``now``, with the failure their status shows."""
        return {
            model: entry.failure.model_copy(
                update={
                    "message": f"{entry.failure.message}; attempt {entry.failures + 1} at "
                    f"{entry.next_attempt.strftime('%H:%M:%S')} UTC"
                }
            )
            for model, entry in sorted(self._entries.items())
            if entry.next_attempt > now
        }

    def seconds_until_due(self, now: datetime) -> float | None:
        """Until the earliest waiting model may try again; None when none is waiting."""
        waiting = [e.next_attempt for e in self._entries.values() if e.next_attempt > now]
        return None if not waiting else (min(waiting) - now).total_seconds()

    def clear(self, models: Iterable[str] | None = None) -> None:
        """Forget the backoff of ``models`` (all when None): a person changed something."""
        if models is None:
            self._entries.clear()
        else:
            for model in models:
                self._entries.pop(model, None)

    def entry(self, model: str) -> Backoff | None:
        return self._entries.get(model)

"""``reconcile request``: request a model, optionally wait for it, and say what happened."""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.availability import ModelRequestResult
from controller.client import ModelAvailability
from controller.domain import DesiredState, Phase

POLL_SECONDS = 0.5

# Phases a wait ends on even though the model is not available: nothing changes them
# without a person (a failure, a suspended model).
_SETTLED = {Phase.FAILED, Phase.PAUSED}


def settled(result: ModelRequestResult) -> bool:
    return result.success or result.error is not None or result.phase in _SETTLED


def request_until(
    desired: DesiredState,
    name: str,
    *,
    wait: bool,
    timeout: float | None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ModelRequestResult, bool]:
    """Request ``name``; with ``wait``, poll until it is available or settled.

    Returns the last result and whether the wait timed out (``timeout`` None: no limit).
    Something else -- ``reconcile --apply`` from cron, a controller -- does the fetching;
    this only watches the cache and the state database for the outcome.
    """
    with ModelAvailability.from_desired(desired) as client:
        result = client.request(name)
        if not wait:
            return result, False
        deadline = None if timeout is None else monotonic() + timeout
        while not settled(result):
            if deadline is not None:
                left = deadline - monotonic()
                if left <= 0:
                    return result, True
                sleep(min(POLL_SECONDS, left))
            else:
                sleep(POLL_SECONDS)
            result = client.request(name)
        return result, False


def render_request(result: ModelRequestResult) -> str:
    head = f"{result.model}: {result.phase.value}"
    lines = [f"{head} -- {result.message}" if result.message else head]
    if result.wait_detail:
        place = f"queue position {result.queue_position}; " if result.queue_position else ""
        lines.append(f"  {place}estimated wait {result.wait_detail}")
    if result.alternatives:
        lines.append(f"  available now instead: {', '.join(result.alternatives)}")
    if result.action_required:
        lines.append(f"  action required: {result.action_required}")
    if result.error:
        lines.append(f"  error: {result.error}")
    return "\n".join(lines)

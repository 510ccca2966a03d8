"""``reconcile request``: ask for a model, optionally wait for it, and say what happened."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from controller.api.client import ModelAvailability
from controller.cli.commands.shared import load
from controller.domain import DesiredState, Phase
from controller.planning.availability import ModelRequestResult
from controller.system.exits import ExitCode

POLL_SECONDS = 0.5
# How long `--wait` waits when no --timeout is given.  A fetch that is under way ends long
# before this; a wait this long means nothing is fetching (no controller, no apply), and a
# script must not hang on that forever.
DEFAULT_WAIT_SECONDS = 3600.0
_SETTLED = {Phase.FAILED, Phase.PAUSED}


def run(path: str, name: str, *, wait: bool, timeout: float | None, as_json: bool) -> int:
    """0: available; 2: queued or under way (with --wait: still so at the timeout); 1: error."""
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    timeout = DEFAULT_WAIT_SECONDS if timeout is None else timeout
    result, timed_out = request_until(loaded[1], name, wait=wait, timeout=timeout)
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print(render_request(result))
    if timed_out:
        print(f"timed out after {timeout:g} s; {name} is {result.phase.value}", file=sys.stderr)
    if result.success:
        return ExitCode.OK
    return ExitCode.ERROR if result.error else ExitCode.CHANGES


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

    Returns the last result and whether the wait timed out (``timeout`` None:
    :data:`DEFAULT_WAIT_SECONDS`).
    Something else -- ``reconcile --apply`` from cron, a controller -- does the fetching;
    this only watches the cache and the state database for the outcome.
    """
    with ModelAvailability.from_desired(desired) as client:
        result = client.request(name)
        if not wait:
            return result, False
        deadline = monotonic() + (DEFAULT_WAIT_SECONDS if timeout is None else timeout)
        while not settled(result):
            left = deadline - monotonic()
            if left <= 0:
                return result, True
            sleep(min(POLL_SECONDS, left))
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

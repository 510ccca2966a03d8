"""``reconcile wait``: block until models are AVAILABLE -- for init containers and scripts.

It only watches; something else fetches (a controller, ``reconcile --apply``).  Each poll asks
the running controller of the manifests' state directory (found as ``reconcile request``
finds it, through ``<state>/controller.json``) on its readiness route, which needs no token;
when none runs or it does not answer -- a pod reading a node's state directory cannot reach
the controller's loopback address -- it reads the status file the manifests name.  A status
written for other manifests (an edit no pass has seen yet) says nothing about these.

Exit codes: 0 every model AVAILABLE; 1 one FAILED (its message printed), an unknown name or
invalid manifests; 2 still waiting at the timeout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from controller.api import discovery
from controller.api.client import (
    ControllerUnreachable,
    UnknownModelError,
    remote_readiness,
)
from controller.cli.commands.shared import load
from controller.domain import DesiredState, Phase
from controller.domain.units import first_line
from controller.engine import status_file
from controller.hub.revisions import redact
from controller.planning.availability import unknown_model_message
from controller.system.exits import ExitCode

# Each poll reads one small file or asks a local API once per model: cheap enough every
# second, and a model that turns AVAILABLE is seen within a second.
POLL_SECONDS = 1.0
# As `request --wait`: a wait this long means nothing is fetching, and a script must not
# hang on that forever.  An init container waiting on a large first download says more.
DEFAULT_TIMEOUT_SECONDS = 3600.0


_ASK_WITH_TOKEN = f"the controller gives the reason only with {discovery.TOKEN_ENV} set"


@dataclass(frozen=True)
class Seen:
    """How a model stood at one poll; ``phase`` None: nothing has reported it yet."""

    phase: Phase | None
    message: str


Look = Callable[[DesiredState, Sequence[str]], Mapping[str, Seen]]


def run(path: str, names: Sequence[str], *, timeout: float | None) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    desired = loaded[1]
    declared = tuple(m.name for m in desired.models)
    for name in names:
        if name not in declared:
            print(unknown_model_message(name, declared), file=sys.stderr)
            return ExitCode.ERROR
    limit = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
    return wait_for(desired, tuple(dict.fromkeys(names)), timeout=limit)


def wait_for(
    desired: DesiredState,
    names: Sequence[str],
    *,
    timeout: float,
    look: Look | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Poll until every one of ``names`` is AVAILABLE (0), one is FAILED (1), or
    ``timeout`` seconds have passed (2); a line on stdout for each model as it arrives."""
    look = look or look_now
    deadline = monotonic() + timeout
    waiting = list(names)
    while True:
        seen = look(desired, waiting)
        for name in list(waiting):
            now = seen[name]
            if now.phase is Phase.AVAILABLE:
                print(f"{name}: AVAILABLE", flush=True)
                waiting.remove(name)
            elif now.phase is Phase.FAILED:
                said = redact(now.message.strip())
                print(f"{name}: FAILED" + (f" -- {said}" if said else ""), file=sys.stderr)
                return ExitCode.ERROR
        if not waiting:
            return ExitCode.OK
        left = deadline - monotonic()
        if left <= 0:
            for name in waiting:
                print(
                    f"timed out after {timeout:g} s; {_standing(name, seen[name])}", file=sys.stderr
                )
            return ExitCode.CHANGES
        sleep(min(POLL_SECONDS, left))


def look_now(desired: DesiredState, names: Sequence[str]) -> Mapping[str, Seen]:
    """How ``names`` stand now: the running controller's word, else the status file's."""
    running = discovery.read_info(desired.state_dir)
    if running is not None:
        try:
            return _ask(running.url, names)
        except ControllerUnreachable:
            pass  # another network namespace, or stopping: the file says the same
    return _read(desired, names)


def _ask(url: str, names: Sequence[str]) -> Mapping[str, Seen]:
    token = discovery.token_from_env()
    seen: dict[str, Seen] = {}
    for name in names:
        try:
            answer = remote_readiness(url, name, token=token)
        except UnknownModelError:
            seen[name] = Seen(None, "the running controller does not declare it yet")
            continue
        # An open route tells its message only to a caller with the token.
        told = answer.message if answer.message is not None else _ASK_WITH_TOKEN
        seen[name] = Seen(answer.phase, told)
    return seen


def _read(desired: DesiredState, names: Sequence[str]) -> Mapping[str, Seen]:
    try:
        report = status_file.read(desired.status_file)
    except FileNotFoundError:
        return dict.fromkeys(names, Seen(None, f"no status at {desired.status_file} yet"))
    except (status_file.UnreadableStatus, OSError) as e:
        return dict.fromkeys(names, Seen(None, f"{desired.status_file}: unreadable ({e})"))
    if report.observed_generation != desired.generation:
        return dict.fromkeys(
            names, Seen(None, "the status is for other manifests; waiting for a reconcile")
        )
    seen: dict[str, Seen] = {}
    for name in names:
        found = report.model(name)
        seen[name] = Seen(found.phase, found.message) if found else Seen(None, "not reconciled yet")
    return seen


def _standing(name: str, seen: Seen) -> str:
    phase = "not reported yet" if seen.phase is None else seen.phase.value
    # A status message may quote a hub's answer: never print a token from it.
    said = redact(first_line(seen.message))
    return f"{name}: {phase} -- {said}" if said else f"{name}: {phase}"

"""``reconcile lease``: run a command with a model marked in use."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from controller.api.client import ModelAvailability, UnknownModelError
from controller.cli.commands.shared import load
from controller.domain import DesiredState
from controller.store import BeingEvictedError
from controller.system.exits import ExitCode


def run(path: str, name: str, run: list[str], *, ttl: float) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    return _lease(loaded[1], name, run, ttl=ttl)


def _lease(desired: DesiredState, name: str, command: Sequence[str], *, ttl: float) -> int:
    """Run ``command`` while holding a lease on ``name``; its exit code is ours.

    The lease is this process's: it ends when the command does, and is void at once if this
    process is killed (its pid is gone), so it never outlives its holder.
    """
    if not command:
        print("reconcile lease: give the command to run after `--`", file=sys.stderr)
        return ExitCode.ERROR
    with ModelAvailability.from_desired(desired) as client:
        try:
            held = client.use(name, ttl_seconds=ttl)
            with held:
                try:
                    code = subprocess.call(list(command))
                except OSError as e:
                    print(f"reconcile lease: cannot run {command[0]}: {e}", file=sys.stderr)
                    return ExitCode.ERROR
        except (UnknownModelError, BeingEvictedError) as e:
            print(str(e), file=sys.stderr)
            return ExitCode.ERROR
    # A command killed by a signal reports it as the shells do.
    return code if code >= 0 else 128 - code

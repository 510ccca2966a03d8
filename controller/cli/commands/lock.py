"""``reconcile lock``: resolve each model to a commit and write the lock files."""

from __future__ import annotations

from controller.cli.commands.shared import load
from controller.system.exits import ExitCode


def run(path: str, upgrade: list[str] | None) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller.engine import locking

    return locking.lock(*loaded, upgrade)

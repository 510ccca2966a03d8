"""``reconcile lock``: resolve each model to a commit and write the lock files."""

from __future__ import annotations

import sys

from controller.cli.commands.shared import load
from controller.system.exits import ExitCode


def run(path: str, upgrade: list[str] | None) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    manifests, desired = loaded
    from controller.engine import pinning
    from controller.manifest.loading import read_lock_files

    try:
        pinned = pinning.pin(manifests, desired, read_lock_files(manifests), upgrade)
    except pinning.PinningRefused as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return ExitCode.ERROR
    for note in pinned.notes:
        print(note, file=sys.stderr)
    for lock_file in pinned.lock_files:
        print(f"{lock_file.path}: {'written' if lock_file.written else 'up to date'}")
        for line in lock_file.summary:
            print(f"  {line}")
    return ExitCode.OK

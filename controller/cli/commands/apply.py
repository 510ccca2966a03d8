"""``reconcile --apply``: one pass, its plan, its progress and its result."""

from __future__ import annotations

import json
import sys

from controller.cli import render
from controller.cli.commands.shared import load
from controller.domain import budget
from controller.engine import status_file
from controller.system.exits import ExitCode


def run(
    path: str,
    *,
    as_json: bool,
    offline: bool,
    locked: bool = False,
    budget_bytes: int | None = None,
) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    manifests, desired = loaded
    from dataclasses import replace

    from controller.engine import locking
    from controller.engine.reconcile import reconcile

    locks = locking.check(manifests, desired, locked=locked)
    if locks is None:
        return ExitCode.ERROR
    from controller.cli.terminal import ProgressDisplay
    from controller.engine.progress import ProgressTracker
    from controller.engine.reconcile import PassHooks

    tracker, display = ProgressTracker(), ProgressDisplay()
    tracker.listen(display, every=display.interval)
    try:
        result = reconcile(
            desired,
            downloads=manifests.downloads,
            offline=offline,
            pinned=locks.pinned,
            hooks=PassHooks(progress=tracker),
            budget=None if budget_bytes is None else budget.explicit(budget_bytes),
        )
    finally:
        display.close()
    stale = locking.stale_warnings(locks)
    if stale:
        shown = replace(result.plan, warnings=(*stale, *result.plan.warnings))
        result = replace(result, plan=shown)
    if as_json:
        print(
            json.dumps(
                {
                    "plan": render.plan_to_dict(result.plan),
                    "status": status_file.to_dict(result.status),
                },
                indent=2,
            )
        )
    else:
        sys.stdout.write(render.plan_to_text(result.plan))
        print()
        sys.stdout.write(render.results_to_text(result.outcome.results))
        print()
        print(render.status_to_text(result.status))
        print(f"\nStatus written to {desired.status_file}")
    return ExitCode.OK if result.ok else ExitCode.ERROR

"""``reconcile --apply``: one pass; its plan, then its progress, then its result."""

from __future__ import annotations

import json
import sys

from controller.cli import render
from controller.cli.commands.shared import load_for_pass
from controller.domain import Plan, budget
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
    loaded = load_for_pass(path, locked=locked)
    if loaded is None:
        return ExitCode.ERROR
    from controller.cli.terminal import ProgressDisplay
    from controller.engine.progress import ProgressTracker
    from controller.engine.reconcile import PassHooks, reconcile

    tracker, display = ProgressTracker(), ProgressDisplay()
    tracker.listen(display, every=display.interval)
    try:
        result = reconcile(
            loaded,
            offline=offline,
            hooks=PassHooks(progress=tracker, on_plan=None if as_json else _show_plan),
            budget=None if budget_bytes is None else budget.explicit(budget_bytes),
        )
    finally:
        display.close()
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
        sys.stdout.write(render.results_to_text(result.outcome.results))
        print()
        print(render.status_to_text(result.status))
        print(f"\nStatus written to {loaded.desired.status_file}")
    return ExitCode.OK if result.ok else ExitCode.ERROR


def _show_plan(plan: Plan) -> None:
    """The plan, before the progress of carrying it out: progress goes to stderr, and when
    both streams go to one file (cron, CI, journald) the plan must be in it first."""
    sys.stdout.write(render.plan_to_text(plan))
    print()
    sys.stdout.flush()

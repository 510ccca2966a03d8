"""``reconcile --plan``: what a pass would do, without doing it."""

from __future__ import annotations

import sys

from controller.cli import render
from controller.cli.commands.shared import configure_hub, say_rejected
from controller.domain import budget
from controller.manifest import loading
from controller.system.clock import utcnow
from controller.system.exits import ExitCode


def run(
    path: str,
    *,
    as_json: bool,
    detailed: bool,
    offline: bool,
    locked: bool = False,
    state_file: str | None = None,
    budget_bytes: int | None = None,
) -> int:
    try:
        loaded = loading.load(path, locked=locked)
    except loading.Rejected as e:
        # The two most common CI failures still give a program the document it parses.
        if as_json:
            sys.stdout.write(render.errors_to_json(e.details or e.problems, utcnow()))
        say_rejected(e)
        return ExitCode.ERROR
    configure_hub(loaded.desired)
    from controller.engine.reconcile import PlanRefused, plan_for_machine, plan_here

    chosen = None if budget_bytes is None else budget.explicit(budget_bytes)
    # The lock, when there is one, describes the remote side: no hub needed for those models.
    try:
        the_plan = (
            plan_here(loaded, offline=offline, budget=chosen)
            if state_file is None
            else plan_for_machine(loaded, state_file, budget=chosen)
        )
    except PlanRefused as e:
        if as_json:
            sys.stdout.write(render.errors_to_json([str(e)], utcnow()))
        print(e, file=sys.stderr)
        return ExitCode.ERROR
    sys.stdout.write(render.plan_to_json(the_plan) if as_json else render.plan_to_text(the_plan))
    if the_plan.errors:
        return ExitCode.ERROR
    return ExitCode.CHANGES if detailed and not the_plan.empty else ExitCode.OK

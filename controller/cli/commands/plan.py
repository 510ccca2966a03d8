"""``reconcile --plan``: what a pass would do, without doing it."""

from __future__ import annotations

import sys

from controller.cli import render
from controller.cli.commands.shared import load
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
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller.engine import locking

    # The lock, when there is one, describes the remote side: no hub needed for those models.
    the_plan = locking.plan(
        *loaded,
        offline=offline,
        locked=locked,
        state_file=state_file,
        budget_bytes=budget_bytes,
    )
    if the_plan is None:
        return ExitCode.ERROR
    sys.stdout.write(render.plan_to_json(the_plan) if as_json else render.plan_to_text(the_plan))
    if the_plan.errors:
        return ExitCode.ERROR
    return ExitCode.CHANGES if detailed and not the_plan.empty else ExitCode.OK

"""``reconcile --apply``: one pass; its plan, then its progress, then its result.

Ctrl-C stops the pass at its next safe point (a transfer between two chunks, or blocked in
a read, which the stop wakes), keeps the partial files for the next apply to resume, writes a
status that says the models were interrupted, and exits 130; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

from controller.cli import render
from controller.cli.commands.shared import load_for_pass
from controller.domain import Plan, budget
from controller.engine import status_file
from controller.system.cancel import StopSignal
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
    stop = StopSignal()
    try:
        with _stopped_by_ctrl_c(stop):
            result = reconcile(
                loaded,
                offline=offline,
                hooks=PassHooks(
                    stop=stop, progress=tracker, on_plan=None if as_json else _show_plan
                ),
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
    if stop.all_stopped:
        print(
            "reconcile: interrupted; partial files are kept and the next `reconcile --apply` "
            "resumes them",
            file=sys.stderr,
        )
        return ExitCode.INTERRUPTED
    return ExitCode.OK if result.ok else ExitCode.ERROR


@contextlib.contextmanager
def _stopped_by_ctrl_c(stop: StopSignal) -> Iterator[None]:
    """While the pass runs, the first SIGINT asks it to stop at its next safe point and the
    second exits at once.  A KeyboardInterrupt would not do: raised in the main thread, it
    leaves the download threads running to the end of their files (the executor waits for
    them), minutes on a large shard."""

    def say(text: str) -> None:
        # Straight to the descriptor: the handler may run while the main thread is inside a
        # write to sys.stderr, and a buffered stream refuses a re-entrant write.
        with contextlib.suppress(OSError):
            os.write(sys.stderr.fileno(), f"\nreconcile: {text}\n".encode())

    def interrupted(_signum: int, _frame: FrameType | None) -> None:
        if stop.all_stopped:
            say("interrupted again; exiting now")
            # Every write is crash-safe (atomic replaces, partials as verified prefixes), so
            # an exit at any instant loses nothing but the chunk in flight.
            os._exit(ExitCode.INTERRUPTED)
        say("interrupted; stopping at the next safe point (Ctrl-C again to exit at once)")
        stop.stop_all()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _show_plan(plan: Plan) -> None:
    """The plan, before the progress of carrying it out: progress goes to stderr, and when
    both streams go to one file (cron, CI, journald) the plan must be in it first."""
    sys.stdout.write(render.plan_to_text(plan))
    print()
    sys.stdout.flush()

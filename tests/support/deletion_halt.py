"""``reconcile`` whose deletions halt before a chosen step, for a test to kill it right there.

    python -m tests.support.deletion_halt STEP MARKER RECONCILE-ARGUMENTS...

Runs the real command in this process, with one of :mod:`controller.cache.deletion`'s step
functions (``STEP``, one of :data:`STEPS`) replaced: the first deletion that reaches it
writes this process's id to ``MARKER`` and waits, never running the step, until the test
kills the process.  The kill then lands at a known instant between two steps, which
polling the cache from outside could not promise; :func:`start` is the test's side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from controller.cache import deletion
from controller.cli.main import main as reconcile
from tests.support.cli import Workdir

# In the order a deletion runs them; halting before one means every earlier step is done.
STEPS = ("remove_refs", "unlink_entries", "remove_unlinked_blobs", "remove_if_empty")


def start(work: Workdir, step: str, marker: Path, *args: str) -> subprocess.Popen[bytes]:
    """``reconcile ARGS`` in the background, halting before ``step`` (``marker`` appears then)."""
    if step not in STEPS:
        raise ValueError(f"{step!r} is not one of {STEPS}")
    return work.start(step, str(marker), *args, module=__name__)


def main(argv: list[str]) -> int:
    step, marker, *args = argv

    def halt(*_args: object, **_kwargs: object) -> None:
        Path(marker).write_text(str(os.getpid()))
        threading.Event().wait()  # until the test kills this process

    setattr(deletion, step, halt)  # deletion.delete looks its steps up at each call
    return reconcile(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

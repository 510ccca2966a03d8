"""``reconcile`` as if on another node of a shared file system whose ``flock`` does nothing.

    python -m tests.support.shared_node NODE RECONCILE-ARGUMENTS...

On NFS, Lustre or GPFS an ``flock`` may hold only within one node, or not at all.  This runs the
real command in this process with ``fcntl.flock`` replaced by a function that returns at once
-- how huggingface_hub's own reproduction of that fault disabled it -- so every ``filelock``
(the controller's claim, huggingface_hub's per-blob locks) is granted to everyone.  The host
name becomes ``NODE``, so that two such processes on one machine look like two nodes to each
other: neither can tell whether the other's pid is alive, only whether its heartbeat is fresh.
:func:`start` is the test's side.
"""

from __future__ import annotations

import fcntl
import socket
import subprocess
import sys
from pathlib import Path

from controller.cli.main import main as reconcile
from tests.support.cli import Workdir


def start(
    work: Workdir, node: str, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``reconcile ARGS`` in the background, on ``node``, with ``flock`` a no-op; its stdout
    and stderr go to ``log``."""
    return work.start(node, *args, env=env, log=log, module=__name__)


def _granted(fd: object, operation: int) -> None:
    """What ``flock`` does on a file system that does not lock: nothing, successfully."""


def main(argv: list[str]) -> int:
    node, *args = argv
    fcntl.flock = _granted  # filelock calls fcntl.flock through the module at each acquire
    socket.gethostname = lambda: node
    return reconcile(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

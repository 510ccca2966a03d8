"""``reconcile serve``: a cache directory over the hub protocol."""

from __future__ import annotations

import sys
from pathlib import Path

from controller.system.exits import ExitCode


def run(directory: str, host: str, port: int, *, verbose: bool = False) -> int:
    """``verbose``: one line per request on stderr (``-v``)."""
    from controller.mirror.server import run

    if not Path(directory).is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return ExitCode.ERROR
    return run(directory, host, port, verbose=verbose)

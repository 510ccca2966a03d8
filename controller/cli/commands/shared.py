"""What every command that reads manifests shares: loading them, or saying why not."""

from __future__ import annotations

import sys

from controller.domain import DesiredState
from controller.hub import revisions
from controller.manifest.loader import (
    ManifestError,
    ManifestSet,
    load_manifests,
    to_desired,
)


def load(path: str) -> tuple[ManifestSet, DesiredState] | None:
    try:
        manifests = load_manifests(path)
    except ManifestError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        count = len(e.problems)
        print(
            f"{count} problem{'s' if count != 1 else ''} found; nothing was changed.",
            file=sys.stderr,
        )
        return None
    desired = to_desired(manifests)
    # huggingface_hub reads its endpoint at import time: configure before first use.
    revisions.configure(desired.endpoint)
    return manifests, desired

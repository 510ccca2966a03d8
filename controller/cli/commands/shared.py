"""What every command that reads manifests shares: loading them, or saying why not."""

from __future__ import annotations

import sys

from controller.domain import DesiredState
from controller.hub import revisions
from controller.manifest import loading
from controller.manifest.loading import Loaded, Rejected
from controller.manifest.manifest_set import ManifestSet


def load(path: str) -> tuple[ManifestSet, DesiredState] | None:
    """The manifests alone, for commands that do not run a pass."""
    try:
        manifests, desired = loading.read_manifests(path)
    except Rejected as e:
        say_rejected(e)
        return None
    configure_hub(desired)
    return manifests, desired


def load_for_pass(path: str, *, locked: bool) -> Loaded | None:
    """The manifests and their lock files, as ``--plan`` and ``--apply`` start from them."""
    try:
        loaded = loading.load(path, locked=locked)
    except Rejected as e:
        say_rejected(e)
        return None
    configure_hub(loaded.desired)
    return loaded


def say_rejected(rejected: Rejected) -> None:
    for problem in rejected.problems:
        print(problem, file=sys.stderr)
    if rejected.conclusion is not None:
        print(rejected.conclusion, file=sys.stderr)


def configure_hub(desired: DesiredState) -> None:
    # huggingface_hub reads its endpoint at import time: configure before first use.
    revisions.configure(desired.endpoint)

"""``reconcile pause`` and ``reconcile resume``."""

from __future__ import annotations

import json
import sys

from controller.cli.commands.shared import load
from controller.system.exits import ExitCode


def run(path: str, name: str, *, resume: bool, as_json: bool) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller.api import discovery
    from controller.api.client import ModelAvailability, UnknownModelError

    with ModelAvailability.from_desired(loaded[1]) as client:
        try:
            found = client.resume(name) if resume else client.pause(name)
        except UnknownModelError as e:
            print(str(e), file=sys.stderr)
            return ExitCode.ERROR
    # A running controller stops (or resumes) the model's transfer now, not at its resync.
    discovery.nudge(loaded[1].state_dir, f"/v1/models/{name}/{'resume' if resume else 'pause'}")
    if as_json:
        print(json.dumps(found.model_dump(mode="json"), indent=2))
    else:
        print(f"{name}: {found.phase.value} -- {found.message}")
    return ExitCode.OK

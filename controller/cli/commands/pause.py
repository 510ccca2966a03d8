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
    from controller.api.client import ModelAvailability, UnknownModelError

    with ModelAvailability.from_desired(loaded[1]) as client:
        try:
            found = client.resume(name) if resume else client.pause(name)
        except UnknownModelError as e:
            print(str(e), file=sys.stderr)
            return ExitCode.ERROR
    if as_json:
        print(json.dumps(found.model_dump(mode="json"), indent=2))
    else:
        print(f"{name}: {found.phase.value} -- {found.message}")
    return ExitCode.OK

"""``reconcile use``: record one use of a model."""

from __future__ import annotations

import json
import sys

from controller.cli.commands.shared import load
from controller.system.exits import ExitCode


def run(path: str, name: str, *, generation_seconds: float | None, as_json: bool) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller.api.client import ModelAvailability, UnknownModelError

    with ModelAvailability.from_desired(loaded[1]) as client:
        try:
            recorded = client.record_use(name, generation_seconds)
        except (UnknownModelError, ValueError) as e:
            print(str(e), file=sys.stderr)
            return ExitCode.ERROR
    if as_json:
        print(json.dumps(recorded.model_dump(mode="json"), indent=2))
    else:
        took = "" if generation_seconds is None else f" ({generation_seconds:g} s to generate)"
        print(f"recorded a use of {name}{took}")
    return ExitCode.OK

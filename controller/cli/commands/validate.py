"""``reconcile validate`` and ``reconcile schema``: the manifest checked, and its reference."""

from __future__ import annotations

import json

from controller.cli.commands.shared import load
from controller.manifest.schema import manifest_json_schema
from controller.system.exits import ExitCode


def validate(path: str) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    manifests, desired = loaded
    print(f"{len(manifests.files)} manifest file(s), {len(desired.models)} model(s): valid.")
    return ExitCode.OK


def schema() -> int:
    print(json.dumps(manifest_json_schema(), indent=2))
    return ExitCode.OK

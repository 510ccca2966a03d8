"""``reconcile status``: the last status as a table or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from controller.cli import render
from controller.cli.commands.shared import load
from controller.engine import status_file
from controller.system.exits import ExitCode


def run(path: str, status_path: str | None, *, as_json: bool) -> int:
    if status_path is None:
        loaded = load(path)
        if loaded is None:
            return ExitCode.ERROR
        status_path = loaded[1].status_file
    if not Path(status_path).exists():
        print(f"no status at {status_path}: run `reconcile --apply` first", file=sys.stderr)
        return ExitCode.ERROR
    try:
        report = status_file.read(status_path)
    except Exception as e:  # a hand-edited or truncated file is a user problem, not a bug
        print(f"{status_path}: not a modelsync status file: {e}", file=sys.stderr)
        return ExitCode.ERROR
    if as_json:
        print(json.dumps(status_file.to_dict(report), indent=2))
    else:
        print(render.status_to_text(report))
    return ExitCode.OK

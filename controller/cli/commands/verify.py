"""``reconcile verify``: re-check what is on disk and run the probes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from controller.cli.commands.shared import load
from controller.domain.units import first_line, plural
from controller.engine import status_file
from controller.system.exits import ExitCode


def run(path: str, models: list[str], *, full: bool, as_json: bool) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    desired = loaded[1]
    unknown = sorted(set(models) - {m.name for m in desired.models})
    if unknown:
        print(
            f"unknown model(s): {', '.join(unknown)}; declared: "
            f"{', '.join(m.name for m in desired.models)}",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    from controller.api.client import ModelAvailability
    from controller.cli.terminal import HashingProgress
    from controller.engine import health as verification
    from controller.store import StateStore
    from controller.system.clock import utcnow

    with StateStore.open(Path(desired.state_dir)) as store, HashingProgress() as progress:
        checks = verification.verify_declared(
            desired, store, clock=utcnow, models=models, full=full, progress=progress
        )
    # The whole status, as the request API computes it (queue, retention, the last
    # reconcile's failures), not just the files this check looked at.
    with ModelAvailability.from_desired(desired, nudge=False) as client:
        status_file.write(desired.status_file, client.status_report())
    files = [c for c in checks if not c.probe]
    bad = [c for c in files if not c.ok]
    probes = [c for c in checks if c.probe]
    if as_json:
        print(
            json.dumps(
                {
                    "checked": len(files),
                    "hashed": sum(c.hashed for c in files),
                    "damaged": [c.__dict__ for c in bad],
                    "probes_failed": [{"model": c.model, "detail": c.detail} for c in probes],
                },
                indent=2,
            )
        )
    else:
        hashed = sum(c.hashed for c in files)
        print(
            f"{plural(len(files), 'file')} checked ({hashed} hashed, "
            f"{len(files) - hashed} unchanged since their last verification); {len(bad)} damaged."
        )
        for c in bad:
            print(f"  {c.model}: {c.detail}")
        if bad:
            print("Run `reconcile --apply` to repair them.")
        for c in probes:
            print(f"  {c.model}: files verified, but the probe failed: {first_line(c.detail)}")
    return ExitCode.ERROR if bad or probes else ExitCode.OK

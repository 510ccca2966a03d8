"""``reconcile adopt``: take ownership of models another tool fetched."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.cli.commands.shared import load
from controller.domain import DesiredState
from controller.domain.units import human_bytes, plural
from controller.engine import adoption
from controller.engine.observe import observe
from controller.planning.planner import assess_all
from controller.store import StateStore
from controller.system.clock import utcnow
from controller.system.exits import ExitCode


def run(path: str, names: list[str], *, as_json: bool) -> int:
    loaded = load(path)
    if loaded is None:
        return ExitCode.ERROR
    return _adopt(loaded[1], names, as_json=as_json)


def _adopt(desired: DesiredState, names: Sequence[str], *, as_json: bool) -> int:
    """Take ownership of the named models' files already in the cache (all of each model's
    selected files at its commit; nothing is downloaded and nothing is deleted now)."""
    declared = [m.name for m in desired.models]
    unknown = sorted(set(names) - set(declared))
    if unknown:
        print(
            f"unknown model(s): {', '.join(unknown)}; declared: {', '.join(declared)}",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    with StateStore.open(Path(desired.state_dir)) as store:
        # No hub: what the cache serves, and the hub's last answer, say what each model is.
        observed = observe(desired, now=utcnow(), offline=True, store=store)
        chosen = [a for a in assess_all(desired, observed) if a.model.name in names]
        done = adoption.adopt(store, chosen, observed, utcnow())
    empty = sorted(set(names) - {d.model for d in done})
    if as_json:
        print(json.dumps([d.__dict__ for d in done], indent=2, default=list))
    else:
        for d in done:
            print(
                f"{d.model}: {plural(len(d.paths), 'file')} of {d.repo}@{d.commit[:12]} "
                f"({human_bytes(d.bytes)}) owned by modelsync; {d.new} newly adopted"
            )
        if done:
            print("Retention may now delete them once no declared model needs them.")
    for name in empty:
        print(f"{name}: nothing of it is in the cache to adopt", file=sys.stderr)
    return ExitCode.ERROR if empty else ExitCode.OK

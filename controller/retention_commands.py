"""``reconcile adopt`` and ``reconcile lease``: the CLI doors of ownership and leases."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from controller import adoption
from controller.client import ModelAvailability, UnknownModelError
from controller.clock import utcnow
from controller.domain import DesiredState
from controller.exits import ExitCode
from controller.observe import observe
from controller.plan import assess_all
from controller.state import BeingEvictedError, StateStore
from controller.units import human_bytes, plural


def adopt(desired: DesiredState, names: Sequence[str], *, as_json: bool) -> int:
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


def lease(desired: DesiredState, name: str, command: Sequence[str], *, ttl: float) -> int:
    """Run ``command`` while holding a lease on ``name``; its exit code is ours.

    The lease is this process's: it ends when the command does, and is void at once if this
    process is killed (its pid is gone), so it never outlives its holder.
    """
    if not command:
        print("reconcile lease: give the command to run after `--`", file=sys.stderr)
        return ExitCode.ERROR
    with ModelAvailability.from_desired(desired) as client:
        try:
            held = client.use(name, ttl_seconds=ttl)
            with held:
                try:
                    code = subprocess.call(list(command))
                except OSError as e:
                    print(f"reconcile lease: cannot run {command[0]}: {e}", file=sys.stderr)
                    return ExitCode.ERROR
        except (UnknownModelError, BeingEvictedError) as e:
            print(str(e), file=sys.stderr)
            return ExitCode.ERROR
    # A command killed by a signal reports it as the shells do.
    return code if code >= 0 else 128 - code

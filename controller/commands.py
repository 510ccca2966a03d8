"""What each ``reconcile`` command does, between parsing its arguments and its exit code.

User errors (bad manifests, unreadable status files) are printed as messages and exit 1;
tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from controller import budget, hub, render, retention_view, status
from controller.domain import DesiredState
from controller.exits import ExitCode
from controller.manifest import (
    ManifestError,
    ManifestSet,
    load_manifests,
    manifest_json_schema,
    to_desired,
)
from controller.requesting import render_request
from controller.status import StatusReport
from controller.units import human_bytes
from controller.usage import format_rate


def _load(path: str) -> tuple[ManifestSet, DesiredState] | None:
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
    hub.configure(desired.endpoint)
    return manifests, desired


def validate(path: str) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    manifests, desired = loaded
    print(f"{len(manifests.files)} manifest file(s), {len(desired.models)} model(s): valid.")
    return ExitCode.OK


def schema() -> int:
    print(json.dumps(manifest_json_schema(), indent=2))
    return ExitCode.OK


def plan(
    path: str,
    *,
    as_json: bool,
    detailed: bool,
    offline: bool,
    locked: bool = False,
    state_file: str | None = None,
    budget_bytes: int | None = None,
) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller import locking

    # The lock, when there is one, describes the remote side: no hub needed for those models.
    the_plan = locking.plan(
        *loaded,
        offline=offline,
        locked=locked,
        state_file=state_file,
        budget_bytes=budget_bytes,
    )
    if the_plan is None:
        return ExitCode.ERROR
    sys.stdout.write(render.plan_to_json(the_plan) if as_json else render.plan_to_text(the_plan))
    if the_plan.errors:
        return ExitCode.ERROR
    return ExitCode.CHANGES if detailed and not the_plan.empty else ExitCode.OK


def apply(
    path: str,
    *,
    as_json: bool,
    offline: bool,
    locked: bool = False,
    budget_bytes: int | None = None,
) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    manifests, desired = loaded
    from dataclasses import replace

    from controller import locking
    from controller.loop import reconcile

    locks = locking.check(manifests, desired, locked=locked)
    if locks is None:
        return ExitCode.ERROR
    from controller.loop import PassHooks
    from controller.progress import ProgressTracker
    from controller.terminal import ProgressDisplay

    tracker, display = ProgressTracker(), ProgressDisplay()
    tracker.listen(display, every=display.interval)
    try:
        result = reconcile(
            desired,
            downloads=manifests.downloads,
            offline=offline,
            pinned=locks.pinned,
            hooks=PassHooks(progress=tracker),
            budget=None if budget_bytes is None else budget.explicit(budget_bytes),
        )
    finally:
        display.close()
    stale = locking.stale_warnings(locks)
    if stale:
        shown = replace(result.plan, warnings=(*stale, *result.plan.warnings))
        result = replace(result, plan=shown)
    if as_json:
        print(
            json.dumps(
                {"plan": render.plan_to_dict(result.plan), "status": _status_dict(result.status)},
                indent=2,
            )
        )
    else:
        sys.stdout.write(render.plan_to_text(result.plan))
        print()
        sys.stdout.write(render.results_to_text(result.outcome.results))
        print()
        print(_status_table(result.status))
        print(f"\nStatus written to {desired.status_file}")
    return ExitCode.OK if result.ok else ExitCode.ERROR


def adopt(path: str, names: list[str], *, as_json: bool) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller import retention_commands

    return retention_commands.adopt(loaded[1], names, as_json=as_json)


def lease(path: str, name: str, run: list[str], *, ttl: float) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller import retention_commands

    return retention_commands.lease(loaded[1], name, run, ttl=ttl)


def lock(path: str, upgrade: list[str] | None) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller import locking

    return locking.lock(*loaded, upgrade)


def verify(path: str, models: list[str], *, full: bool, as_json: bool) -> int:
    loaded = _load(path)
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
    from controller import verify as verification
    from controller.client import ModelAvailability
    from controller.clock import utcnow
    from controller.state import StateStore

    with StateStore.open(Path(desired.state_dir)) as store:
        checks = verification.verify_declared(
            desired,
            store,
            clock=utcnow,
            models=models,
            full=full,
            progress=verification.terminal_progress,
        )
    # The whole status, as the request API computes it (queue, retention, the last
    # reconcile's failures), not just the files this check looked at.
    with ModelAvailability.from_desired(desired, nudge=False) as client:
        status.write(desired.status_file, client.status_report())
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
            f"{len(files)} files checked ({hashed} hashed, {len(files) - hashed} unchanged "
            f"since their last verification); {len(bad)} damaged."
        )
        for c in bad:
            print(f"  {c.model}: {c.detail}")
        if bad:
            print("Run `reconcile --apply` to repair them.")
        for c in probes:
            print(f"  {c.model}: files verified, but the probe failed: {c.detail}")
    return ExitCode.ERROR if bad or probes else ExitCode.OK


def watch(
    path: str, *, host: str | None, port: int | None, locked: bool, offline: bool = False
) -> int:
    from controller.service import run

    return run(path, host=host, port=port, locked=locked, offline=offline)


def pause(path: str, name: str, *, resume: bool, as_json: bool) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller import instance
    from controller.client import ModelAvailability, UnknownModelError

    with ModelAvailability.from_desired(loaded[1]) as client:
        try:
            found = client.resume(name) if resume else client.pause(name)
        except UnknownModelError as e:
            print(str(e), file=sys.stderr)
            return ExitCode.ERROR
    # A running controller stops (or resumes) the model's transfer now, not at its resync.
    instance.nudge(loaded[1].state_dir, f"/v1/models/{name}/{'resume' if resume else 'pause'}")
    if as_json:
        print(json.dumps(found.model_dump(mode="json"), indent=2))
    else:
        print(f"{name}: {found.phase.value} -- {found.message}")
    return ExitCode.OK


def show_status(path: str, status_file: str | None, *, as_json: bool) -> int:
    if status_file is None:
        loaded = _load(path)
        if loaded is None:
            return ExitCode.ERROR
        status_file = loaded[1].status_file
    if not Path(status_file).exists():
        print(f"no status at {status_file}: run `reconcile --apply` first", file=sys.stderr)
        return ExitCode.ERROR
    try:
        report = status.read(status_file)
    except Exception as e:  # a hand-edited or truncated file is a user problem, not a bug
        print(f"{status_file}: not a modelsync status file: {e}", file=sys.stderr)
        return ExitCode.ERROR
    print(json.dumps(_status_dict(report), indent=2) if as_json else _status_table(report))
    return ExitCode.OK


def serve(directory: str, host: str, port: int, *, verbose: bool = False) -> int:
    """``verbose``: one line per request on stderr (``-v``)."""
    from controller.serve import run

    if not Path(directory).is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return ExitCode.ERROR
    return run(directory, host, port, verbose=verbose)


def request(path: str, name: str, *, wait: bool, timeout: float | None, as_json: bool) -> int:
    """0: available; 2: queued or under way (with --wait: still so at the timeout); 1: error."""
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller.requesting import request_until

    result, timed_out = request_until(loaded[1], name, wait=wait, timeout=timeout)
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print(render_request(result))
    if timed_out:
        print(f"timed out after {timeout:g} s; {name} is {result.phase.value}", file=sys.stderr)
    if result.success:
        return ExitCode.OK
    return ExitCode.ERROR if result.error else ExitCode.CHANGES


def use(path: str, name: str, *, generation_seconds: float | None, as_json: bool) -> int:
    loaded = _load(path)
    if loaded is None:
        return ExitCode.ERROR
    from controller.client import ModelAvailability, UnknownModelError

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


def _status_dict(report: StatusReport) -> dict[str, object]:
    return status.to_dict(report)


def _status_table(report: StatusReport) -> str:
    header = ("NAME", "PHASE", "PRIORITY", "USES/DAY", "SIZE", "VERIFIED", "REVISION", "MESSAGE")
    rows = [header]
    for m in report.models:
        score = "-" if m.integrity_score is None else f"{m.integrity_score:.0%}"
        rev = f"{m.revision}@{m.commit[:12]}" if m.commit else m.revision
        rows.append(
            (
                m.name,
                m.phase.value,
                m.effective_priority,
                format_rate(m.usage_frequency),
                human_bytes(m.size_on_disk),
                score,
                rev,
                m.message,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    s = report.summary
    phases = ", ".join(f"{n} {p}" for p, n in s.phases.items())
    lines.append("")
    lines.append(
        f"{s.models} models: {phases}; {human_bytes(s.size_on_disk)} on disk of "
        f"{human_bytes(s.expected_size)} expected; ready: {'yes' if s.ready else 'no'}"
    )
    if report.retention is not None:
        lines.extend(retention_view.to_lines(report.retention))
    return "\n".join(lines)

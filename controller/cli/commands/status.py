"""``reconcile status``: the last status as a table or JSON, with usage and leases as of now.

The status file is written by a pass, but uses and leases are recorded between passes
(``reconcile use``, ``reconcile lease``, the request API), so each model's usage and whether
it is in use are read live from the state database and laid over the file's entries.

Which database: with ``-f``, the manifests' state directory.  With ``--status-file F``, the
file is taken as it was written -- it may be another machine's, whose uses are in that
machine's database, not this one's -- unless the state database sits beside it (the default
``<state>/status.yaml``): that is the state directory of the machine that wrote it, read live
like the local one.

With ``--from URL`` (repeatable) it asks running controllers instead, over their API (the
token from ``MODELSYNC_API_TOKEN``), and prints one table of node x model with a summary
line.  A controller that does not answer is a row saying why, and the exit code is 1; 0 when
every one answered, whatever its models' phases (``--json`` says those).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.cli import render
from controller.cli.commands.shared import load
from controller.domain import DesiredState
from controller.domain.status import StatusReport
from controller.engine import status_file
from controller.system.exits import ExitCode

_FLEET_CONNECTIONS = 32


@dataclass(frozen=True)
class _UsageSource:
    state_dir: Path
    window_days: int


def run(path: str, status_path: str | None, *, as_json: bool) -> int:
    source: _UsageSource | None
    if status_path is None:
        loaded = load(path)
        if loaded is None:
            return ExitCode.ERROR
        desired = loaded[1]
        status_path = desired.status_file
        source = _UsageSource(Path(desired.state_dir), desired.usage_window_days)
    else:
        source = _beside(Path(status_path))
    if not Path(status_path).exists():
        print(f"no status at {status_path}: run `reconcile --apply` first", file=sys.stderr)
        return ExitCode.ERROR
    try:
        report = status_file.read(status_path)
    except status_file.UnreadableStatus as e:
        # One line: a status file that a full disk or a hand edit damaged is a user problem,
        # and the next pass rewrites it.
        print(
            f"{status_path}: damaged or not a modelsync status file ({e}); the next "
            "`reconcile --apply` rewrites it",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    except OSError as e:
        print(f"{status_path}: cannot read: {e.strerror}", file=sys.stderr)
        return ExitCode.ERROR
    if source is not None:
        report = _live(report, source)
    if as_json:
        print(json.dumps(status_file.to_dict(report), indent=2))
    else:
        print(render.status_to_text(report))
    return ExitCode.OK


def run_fleet(sources: Sequence[str], *, as_json: bool) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from controller.api.discovery import token_from_env

    token = token_from_env()
    # Asked at once: a fleet view waits for its slowest controller, not for their sum.
    with ThreadPoolExecutor(max_workers=min(len(sources), _FLEET_CONNECTIONS)) as pool:
        members = list(pool.map(lambda url: _ask(url, token), sources))
    if as_json:
        print(json.dumps(render.fleet_to_dict(members), indent=2))
    else:
        print(render.fleet_to_text(members))
    return ExitCode.OK if all(m.report is not None for m in members) else ExitCode.ERROR


def _ask(url: str, token: str | None) -> render.FleetMember:
    from controller.api.client import ControllerUnreachable, remote_status
    from controller.hub.revisions import redact

    try:
        return render.FleetMember(url, remote_status(url, token=token))
    except ControllerUnreachable as e:
        return render.FleetMember(url, None, redact(str(e).removeprefix(f"{url}: ")))


def _beside(status_path: Path) -> _UsageSource | None:
    """The state directory a status file was written from, when the database is beside it.

    Its usage window is the manifests' default: a status file does not record the window,
    and the manifests that set another are not at hand with ``--status-file``.
    """
    from controller.store import DB_FILENAME

    if not (status_path.parent / DB_FILENAME).is_file():
        return None
    return _UsageSource(status_path.parent, DesiredState.usage_window_days)


def _live(report: StatusReport, source: _UsageSource) -> StatusReport:
    """``report`` with usage and leases read now, the database opened read-only (a status
    command changes nothing); no database yet means nothing was used or leased."""
    import sqlite3

    from controller.domain.usage import derive, recent_start, window_start
    from controller.planning.status import with_live_usage
    from controller.store import StateError, StateStore, leases
    from controller.system.clock import utcnow

    now = utcnow()
    try:
        store = StateStore.open_readonly(source.state_dir)
        if store is None:
            return with_live_usage(report, {}, ())
        with store:
            aggregates = store.usage_aggregates(
                since=window_start(now, source.window_days),
                recent_since=recent_start(now, source.window_days),
            )
            held = leases.live_by_model(store.leases(), now)
    except (StateError, sqlite3.Error) as e:
        # The file's own figures are still worth showing; say why they may be dated.
        print(f"usage and leases as of the last pass: {e}", file=sys.stderr)
        return report
    usage = derive(aggregates.values(), window_days=source.window_days)
    return with_live_usage(report, usage, held)

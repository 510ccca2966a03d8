"""The answer to "I need model X": one pure function behind the three request doors.

The Python client (``controller.api.client``), the CLI (``reconcile request``) and the HTTP
API (``controller.api.app``) all gather the same inputs -- the desired state, an
observation, the plan it implies and the status derived from both -- and hand them to
:func:`answer`, so for the same state they give the same :class:`ModelRequestResult`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from controller.domain import DesiredModel, DesiredState, Disk, Observation, Phase, Plan, Reason
from controller.domain.status import Failure, ModelStatus, StatusReport
from controller.domain.units import human_bytes
from controller.planning import retention_view, status
from controller.planning.planner import QueueEntry, assess_all, plan, queue

# Until a download has been measured, waits are estimated at this rate (80 Mbit/s).
ASSUMED_THROUGHPUT = 10_000_000  # bytes per second

LOGIN = "log in to the hub (`hf auth login`) or set HF_TOKEN"
APPLY = "run `reconcile --apply`"
CONTROLLER_FETCHES = "the running controller fetches it"

# Phases that end without anyone doing anything but reconciling.
_WAITING = {Phase.QUEUED, Phase.MISSING, Phase.DOWNLOADING, Phase.UPDATING, Phase.CORRUPTED}


class ModelRequestResult(BaseModel):
    """The seed's ModelRequestResult: can the model be used, and if not, when and how."""

    model_config = ConfigDict(frozen=True)

    model: str
    success: bool = Field(description="the model is AVAILABLE: present and verified, usable now")
    phase: Phase
    reason: Reason | None = None
    message: str = ""
    queue_position: int | None = Field(
        default=None, description="1-based place in the order of pending work"
    )
    estimated_wait_seconds: float | None = Field(
        default=None,
        description="time until available: the bytes to transfer up to and including this "
        "model, at the measured download rate (0 when available; None when unknown)",
    )
    wait_detail: str | None = Field(
        default=None, description="how the wait was estimated, for people"
    )
    alternatives: tuple[str, ...] = Field(
        default=(),
        description="AVAILABLE models declared as alternatives or sharing a tag, best first",
    )
    action_required: str | None = Field(
        default=None, description="what a person must do for the model to become available"
    )
    error: str | None = None
    declared_models: tuple[str, ...] = Field(
        default=(), description="set when the name is unknown: the names that are declared"
    )


@dataclass(frozen=True)
class Snapshot:
    """Everything a request is answered from: the plan, its queue and the status."""

    plan: Plan
    queue: Mapping[str, QueueEntry]
    report: StatusReport
    throughput: float | None  # measured bytes/second, None before any download
    disk: Disk | None
    # Models paused through the API (not suspended in the manifest), and those of them whose
    # files are all there and verified: a pause stops work on a model, not its use.
    paused: frozenset[str] = frozenset()
    paused_usable: frozenset[str] = frozenset()


def snapshot(
    desired: DesiredState,
    observed: Observation,
    now: datetime,
    *,
    failures: Mapping[str, Failure] | None = None,
    in_progress: Mapping[str, Phase] | None = None,
) -> Snapshot:
    """The live state: what a reconcile would do now, and the status that follows.

    ``failures`` and ``in_progress`` are what the last reconcile reported that the disk
    cannot show (a failed download looks like a queued one on disk).
    """
    assessments = assess_all(desired, observed)
    the_plan = plan(desired, observed, now, assessments=assessments)
    entries = queue(the_plan)
    report = status.derive(
        assessments,
        generation=desired.generation,
        now=now,
        failures=failures,
        in_progress=in_progress,
        errors=the_plan.errors,
        usage=observed.usage,
        queue_positions={name: e.position for name, e in entries.items()},
        retention=retention_view.from_plan(the_plan),
    )
    paused = [a for a in assessments if a.paused]
    return Snapshot(
        the_plan,
        entries,
        report,
        observed.throughput,
        observed.disk,
        paused=frozenset(a.model.name for a in paused),
        paused_usable=frozenset(a.model.name for a in paused if a.complete and not a.ref_behind),
    )


def unknown_model(name: str, desired: DesiredState) -> ModelRequestResult:
    names = tuple(m.name for m in desired.models)
    return ModelRequestResult(
        model=name,
        success=False,
        phase=Phase.UNKNOWN,
        message=f"no model named {name!r} is declared",
        error=unknown_model_message(name, names),
        declared_models=names,
    )


def unknown_model_message(name: str, declared: Iterable[str]) -> str:
    names = ", ".join(declared) or "(none)"
    return f"unknown model {name!r}; declared models: {names}"


def answer(
    name: str, desired: DesiredState, state: Snapshot, *, controller_running: bool = False
) -> ModelRequestResult:
    """The result of requesting ``name`` in the state ``state`` describes.

    ``controller_running``: a controller (``reconcile --watch``) serves these manifests, so
    it fetches what is queued itself; nobody needs to run ``reconcile --apply``.
    """
    model = next((m for m in desired.models if m.name == name), None)
    found = state.report.model(name)
    if model is None or found is None:
        return unknown_model(name, desired)
    entry = state.queue.get(name)
    if name in state.paused_usable:
        return ModelRequestResult(
            model=name,
            success=True,
            phase=found.phase,
            reason=found.reason,
            message=f"usable: its files are present and verified; updates and repairs are "
            f"paused until `reconcile resume {name}`",
            estimated_wait_seconds=0.0,
        )
    if found.phase is Phase.AVAILABLE:
        return ModelRequestResult(
            model=name,
            success=True,
            phase=found.phase,
            reason=found.reason,
            message=found.message,
            estimated_wait_seconds=0.0,
        )
    wait, wait_note = _wait(found, entry, state.throughput)
    return ModelRequestResult(
        model=name,
        success=False,
        phase=found.phase,
        reason=found.reason,
        message=(
            found.message.replace(status.FETCHED_BY_APPLY, CONTROLLER_FETCHES)
            if controller_running
            else found.message
        ),
        queue_position=entry.position if entry else None,
        estimated_wait_seconds=wait,
        wait_detail=wait_note,
        alternatives=alternatives(model, desired, state.report),
        action_required=_action(found, entry, state, controller_running=controller_running),
        error=_error(found, paused=name in state.paused),
    )


def alternatives(
    model: DesiredModel, desired: DesiredState, report: StatusReport
) -> tuple[str, ...]:
    """Available stand-ins: declared alternatives in their order, then tag-mates by name."""
    available = {m.name for m in report.models if m.phase is Phase.AVAILABLE}
    tags = set(model.tags)
    tag_mates = sorted(
        m.name for m in desired.models if m.name != model.name and tags & set(m.tags)
    )
    chosen: list[str] = []
    for candidate in (*model.alternatives, *tag_mates):
        if candidate in available and candidate != model.name and candidate not in chosen:
            chosen.append(candidate)
    return tuple(chosen)


def _wait(
    found: ModelStatus, entry: QueueEntry | None, throughput: float | None
) -> tuple[float | None, str | None]:
    if found.phase not in _WAITING and found.phase is not Phase.UNKNOWN:
        return None, None
    if entry is None:
        return None, None
    measured = throughput is not None and throughput > 0
    rate = throughput if throughput is not None and measured else float(ASSUMED_THROUGHPUT)
    seconds = round(entry.bytes_until_done / rate, 1)
    if entry.bytes_until_done > 0:
        seconds = max(seconds, 0.1)  # bytes still to come: never a wait of nothing
    basis = "measured" if measured else "assumed until a download is measured"
    ahead = f", {human_bytes(entry.bytes_ahead)} of it ahead" if entry.bytes_ahead else ""
    note = (
        f"{_duration(seconds)}: {human_bytes(entry.bytes_until_done)} to transfer{ahead}, "
        f"at {human_bytes(int(rate))}/s ({basis})"
    )
    return seconds, note


def _action(
    found: ModelStatus, entry: QueueEntry | None, state: Snapshot, *, controller_running: bool
) -> str | None:
    disk = state.disk
    if found.phase is Phase.PAUSED:
        if found.name in state.paused:
            return f"run `reconcile resume {found.name}`"
        return "set `suspend: false` for it in the manifest"
    if entry is not None and disk is not None and entry.bytes_until_done > disk.free:
        short = entry.bytes_until_done - disk.free
        return f"free {human_bytes(short)} on the cache's filesystem, then {APPLY}"
    if found.phase is Phase.FAILED:
        return _fix_for(found.reason)
    if found.phase in (Phase.DOWNLOADING, Phase.UPDATING):
        return None  # a reconcile is on it
    if found.phase is Phase.UNKNOWN and found.reason is Reason.HUB_UNREACHABLE:
        return f"{APPLY} with the hub reachable"
    if controller_running and found.phase in _WAITING:
        return None  # the controller is on it: nothing for a person to do
    return APPLY


def _fix_for(reason: Reason) -> str:
    if reason is Reason.ACCESS_DENIED:
        return LOGIN
    if reason in (Reason.REPO_NOT_FOUND, Reason.REVISION_NOT_FOUND, Reason.NO_MATCHING_FILES):
        return "correct the model's repo, revision or include patterns in the manifest"
    if reason is Reason.DISK_FULL:
        return f"free space on the cache's filesystem, then {APPLY}"
    if reason is Reason.HUB_UNREACHABLE:
        return f"{APPLY} with the hub reachable"
    return f"{APPLY} to retry"


def _error(found: ModelStatus, *, paused: bool) -> str | None:
    if found.phase is Phase.FAILED:
        return found.message
    if found.phase is Phase.PAUSED and paused:
        return f"{found.name} is paused, and not all of its files are usable"
    if found.phase is Phase.PAUSED:
        return f"{found.name} is suspended in the manifest"
    return None


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 60:
        return f"about {round(seconds)} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"

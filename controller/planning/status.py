"""The status written back after a reconcile: one phase, reason and message per model.

``derive`` is pure (assessments + this run's failures + ``now`` → a frozen report); the
file is written atomically so a reader never sees half a status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from controller.domain import Phase, Policy, Priority, Reason, RemoteProblem, UsageStats
from controller.domain.assessment import Assessment
from controller.domain.progress import Snapshot
from controller.domain.status import (
    Failure,
    ModelStatus,
    ProbeStatus,
    RetentionStatus,
    StatusReport,
    StatusSummary,
)
from controller.domain.units import human_bytes, plural
from controller.domain.usage import raised_priority

# Who fetches a queued model, when nothing else is known: a request answered while a
# controller runs says the controller does (controller.planning.availability).
FETCHED_BY_APPLY = "fetched by the next `reconcile --apply`"


def derive(
    assessments: tuple[Assessment, ...],
    *,
    generation: str,
    now: datetime,
    failures: Mapping[str, Failure] | None = None,
    in_progress: Mapping[str, Phase] | None = None,
    errors: tuple[str, ...] = (),
    usage: Mapping[str, UsageStats] | None = None,
    queue_positions: Mapping[str, int] | None = None,
    retention: RetentionStatus | None = None,
    interrupted: Collection[str] = (),
) -> StatusReport:
    """``usage`` is the observation's; ``queue_positions`` come from the plan (plan.queue),
    and so does ``retention`` (``controller.planning.retention_view.from_plan``);
    ``interrupted``, the models whose work this pass was asked to stop (Ctrl-C, shutdown)."""
    failures = failures or {}
    in_progress = in_progress or {}
    usage = usage or {}
    positions = queue_positions or {}
    models = tuple(
        _model_status(
            a,
            now,
            failures.get(a.model.name),
            in_progress.get(a.model.name),
            usage.get(a.model.name),
            positions.get(a.model.name),
            interrupted=a.model.name in interrupted,
        )
        for a in assessments
    )
    phases = Counter(m.phase.value for m in models)
    ready = all(
        m.phase is Phase.AVAILABLE
        for m, a in zip(models, assessments, strict=True)
        if a.model.policy is Policy.ALWAYS and not a.model.suspend
    )
    summary = StatusSummary(
        models=len(models),
        phases=dict(sorted(phases.items())),
        size_on_disk=sum(m.size_on_disk for m in models),
        expected_size=sum(m.expected_size for m in models),
        ready=ready,
    )
    return StatusReport(
        observedGeneration=generation,
        updatedAt=now,
        summary=summary,
        models=models,
        errors=errors,
        retention=retention,
    )


def _model_status(
    a: Assessment,
    now: datetime,
    failure: Failure | None,
    transient: Phase | None,
    used: UsageStats | None,
    position: int | None,
    *,
    interrupted: bool = False,
) -> ModelStatus:
    phase, reason, message = _phase(a, failure, transient, position, interrupted=interrupted)
    return ModelStatus(
        name=a.model.name,
        repo=a.model.repo,
        revision=a.model.revision,
        commit=a.commit,
        phase=phase,
        reason=reason,
        message=message,
        size_on_disk=a.present_bytes + sum(d.file.size for d in a.damaged),
        expected_size=a.expected_bytes,
        integrity_score=round(a.verified_bytes / a.expected_bytes, 6) if a.expected_bytes else None,
        missing_files=tuple(f.path for f in a.missing),
        corrupt_files=tuple(d.file.path for d in a.damaged),
        unverified_files=tuple(f.path for f in a.unverified),
        update_available=a.upstream_commit is not None,
        upstream_commit=a.upstream_commit,
        priority=a.model.priority.value,
        policy=a.model.policy.value,
        last_checked=now,
        last_health_check=a.health.checked_at if a.health else None,
        probe=_probe_status(a),
        queue_position=position,
        in_use=a.in_use,
        effective_priority=raised_priority(a.model.priority, _uses(used)).value,
        **_usage_fields(used),
    )


def _usage_fields(used: UsageStats | None) -> dict[str, Any]:
    """What a model's status says about its use: the same whether derived after a pass or
    overlaid later by :func:`with_live_usage`."""
    return {
        "usage_frequency": round(_uses(used), 6),
        "last_used": used.last_used if used else None,
        "average_generation_seconds": (
            None
            if used is None or used.average_generation_seconds is None
            else round(used.average_generation_seconds, 6)
        ),
        "performance_score": used.performance_score if used else None,
    }


def _uses(used: UsageStats | None) -> float:
    return used.uses_per_day if used else 0.0


def with_live_usage(
    report: StatusReport, usage: Mapping[str, UsageStats], in_use: Collection[str]
) -> StatusReport:
    """``report`` with each model's usage and lease as the state store says now.

    A status file is written by a pass, but uses and leases are recorded between passes
    (``reconcile use``, ``reconcile lease``, the request API): without this, a use would show
    only after the next apply.  ``usage`` is by model name (absent: not used in the window);
    ``in_use``, the models a live lease holds.  The effective priority is raised from the
    declared one the file records; a file whose declared priority is not one modelsync knows
    (edited by hand) keeps the effective priority it gives.
    """
    models = []
    for m in report.models:
        used = usage.get(m.name)
        update = {**_usage_fields(used), "in_use": m.name in in_use}
        declared = _PRIORITIES.get(m.priority)
        if declared is not None:
            update["effective_priority"] = raised_priority(declared, _uses(used)).value
        models.append(m.model_copy(update=update))
    return report.model_copy(update={"models": tuple(models)})


_PRIORITIES = {p.value: p for p in Priority}


def _phase(
    a: Assessment,
    failure: Failure | None,
    transient: Phase | None,
    position: int | None,
    *,
    interrupted: bool = False,
) -> tuple[Phase, Reason, str]:
    if a.model.suspend:
        if a.paused:
            return (
                Phase.PAUSED,
                Reason.SUSPENDED,
                f"paused through the API; `reconcile resume {a.model.name}` resumes it; "
                "partial files are kept",
            )
        return Phase.PAUSED, Reason.SUSPENDED, "suspended in the manifest; partial files are kept"
    if transient is not None:
        return transient, Reason.INCOMPLETE, f"{plural(len(a.missing), 'file')} to fetch"
    if failure is not None and not a.complete:
        return Phase.FAILED, failure.reason, failure.message
    if interrupted and a.missing:
        # Nothing runs for it any more: saying DOWNLOADING would have `request --wait` and
        # dashboards wait on work that stopped.
        return (
            Phase.MISSING,
            Reason.INTERRUPTED,
            f"interrupted with {len(a.missing)} of {len(a.files)} files missing; partial "
            "files are kept, and the next `reconcile --apply` resumes them",
        )
    if a.awaiting_request and not _hub_refused(a.problem, a.commit):
        if position is not None:
            where = f"requested; position {position} in the queue"
        elif a.commit is None:
            where = "requested; its files are not known yet (the hub was not reached)"
        else:
            where = "requested"
        return Phase.QUEUED, Reason.REQUESTED, f"{where}; {FETCHED_BY_APPLY}"
    if a.commit is None:
        assert a.problem is not None
        phase = Phase.UNKNOWN if a.problem.reason is Reason.HUB_UNREACHABLE else Phase.FAILED
        return phase, a.problem.reason, a.problem.message
    if a.nothing_selected:
        return Phase.FAILED, Reason.NO_MATCHING_FILES, a.model.nothing_selected()
    if a.retired:
        assert a.evicted is not None
        return (
            Phase.MISSING,
            Reason.EVICTED,
            f"evicted {a.evicted.at:%Y-%m-%d} ({a.evicted.reason.value}); fetched again when "
            "requested",
        )
    if a.damaged:
        names = ", ".join(d.file.path for d in a.damaged)
        return Phase.CORRUPTED, Reason.CORRUPTED, f"damaged: {names}"
    if a.complete and not a.ref_behind and a.probe_failed:
        assert a.health is not None
        return (
            Phase.FAILED,
            Reason.PROBE_FAILED,
            f"files verified, but the probe failed: {a.health.probe_message}",
        )
    if a.complete and not a.ref_behind:
        return Phase.AVAILABLE, Reason.VERIFIED, _available_message(a)
    if a.served_commit is not None and a.served_commit != a.commit:
        return (
            Phase.AVAILABLE,
            Reason.UPSTREAM_MOVED,
            f"serving {a.served_commit[:12]}; update to {a.commit[:12]} pending",
        )
    if a.on_demand_unrequested:
        return Phase.MISSING, Reason.NOT_REQUESTED, "on-demand: fetched when requested"
    if a.missing:
        reason = Reason.MISSING if a.absent else Reason.INCOMPLETE
        return (
            Phase.MISSING,
            reason,
            (f"{len(a.missing)} of {len(a.files)} files missing; run `reconcile --apply`"),
        )
    if a.unverified:
        return (
            Phase.UNKNOWN,
            Reason.UNVERIFIED,
            f"{plural(len(a.unverified), 'file')} present but not yet verified",
        )
    return (
        Phase.MISSING,
        Reason.INCOMPLETE,
        f"refs/{a.model.revision} not yet pointed at the commit",
    )


def _probe_status(a: Assessment) -> ProbeStatus | None:
    h = a.health
    if h is None or h.probe_ok is None or h.commit != a.commit:
        return None
    return ProbeStatus(
        ok=h.probe_ok, exit_code=h.probe_exit, checked_at=h.checked_at, message=h.probe_message
    )


def _hub_refused(problem: RemoteProblem | None, commit: str | None) -> bool:
    """The hub answered, and the answer leaves nothing to fetch (no such repo, no access)."""
    return commit is None and problem is not None and problem.reason is not Reason.HUB_UNREACHABLE


def _available_message(a: Assessment) -> str:
    text = f"{plural(len(a.files), 'file')}, {human_bytes(a.expected_bytes)}, verified"
    if a.upstream_commit:
        text += f"; update available: {a.upstream_commit[:12]} (updates: {a.model.updates.value})"
    return text


def attach(report: StatusReport, progress: Snapshot) -> StatusReport:
    """``report`` with each model's transfer progress (only models in ``progress``)."""
    if not progress:
        return report
    models = tuple(
        m.model_copy(update={"progress": progress[m.name]}) if m.name in progress else m
        for m in report.models
    )
    return report.model_copy(update={"models": models})

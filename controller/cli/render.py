"""Two views of one plan: a Terraform-like text for people and JSON for programs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.domain import Action, ActionKind, BudgetFit, Phase, Plan, Reason
from controller.domain.status import ModelStatus, StatusReport
from controller.domain.units import first_line, human_bytes, plural
from controller.domain.usage import format_rate
from controller.manifest.problems import Problem
from controller.planning import retention_view
from reconcilers.base import ActionResult

# 2.0: each of `errors` is an object (file, line, path, message), no longer a string.
# 2.1: `quarantined` (damaged bytes kept per repo), and deletions with reason
# QuarantineExpired; a field added, none changed, so a 2.0 reader reads it as before.
PLAN_FORMAT_VERSION = "2.1"

_SYMBOL = {
    ActionKind.DOWNLOAD: "+",
    ActionKind.UPDATE: "~",
    ActionKind.REPAIR: "-/+",
    ActionKind.VERIFY: "?",
    ActionKind.DELETE: "-",
}


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    counts = Counter(a.kind.value for a in plan.actions)
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "generation": plan.generation,
        "created_at": plan.created_at.isoformat(),
        "changes_pending": not plan.empty,
        "actions": [_action_to_dict(a) for a in plan.actions],
        "totals": {
            "actions": len(plan.actions),
            "by_kind": {k.value: counts.get(k.value, 0) for k in ActionKind},
            "download_bytes": plan.download_bytes,
            "verify_bytes": plan.verify_bytes,
            "freed_bytes": plan.freed_bytes,
        },
        "disk": None if plan.disk is None else {"total": plan.disk.total, "free": plan.disk.free},
        "retention_mode": plan.retention_mode.value,
        "budget": _budget_to_dict(plan.budget),
        "withheld": [
            {**_action_to_dict(w.action), "withheld_because": w.reason.value, "why": w.message}
            for w in plan.withheld
        ],
        "unmanaged": [
            {"repo": u.repo, "bytes": u.bytes, "commits": list(u.commits)} for u in plan.unmanaged
        ],
        "quarantined": [
            {"repo": q.repo, "files": q.files, "bytes": q.bytes, "expiring": q.expiring}
            for q in plan.quarantined
        ],
        "warnings": list(plan.warnings),
        "errors": [_error_to_dict(message) for message in plan.errors],
    }


def _error_to_dict(
    message: str, file: str | None = None, line: int | None = None, path: str | None = None
) -> dict[str, Any]:
    """One error of the JSON plan: ``message`` always; ``file``, ``line`` (1-based; 0: the
    file as a whole) and ``path`` (the place in the document) when known, else null."""
    return {"file": file, "line": line, "path": path, "message": message}


def errors_to_json(errors: Sequence[Problem | str], created_at: datetime) -> str:
    """The plan document when no plan could be made (invalid manifests, a lock out of sync):
    no actions, and every problem in ``errors`` -- a program reads the same document
    whatever went wrong."""
    document = plan_to_dict(Plan(actions=(), generation="", created_at=created_at))
    document["generation"] = None
    document["errors"] = [
        _error_to_dict(e.message, e.file, e.line, e.path)
        if isinstance(e, Problem)
        else _error_to_dict(e)
        for e in errors
    ]
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def _budget_to_dict(fit: BudgetFit | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    return {
        "budget": fit.budget,
        "source": fit.source,
        "on_disk": fit.on_disk,
        "transfers": fit.transfers,
        "freed": fit.freed,
        "total": fit.total,
        "fits": fit.fits,
    }


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, sort_keys=False) + "\n"


def _action_to_dict(a: Action) -> dict[str, Any]:
    return {
        "kind": a.kind.value,
        "model": a.model,
        "repo": a.repo,
        "revision": a.revision,
        "commit": a.commit,
        "bytes": a.bytes,
        "reason": a.reason.value,
        "message": a.message,
        "priority": a.priority.value if a.priority else None,
        "priority_reason": a.priority_reason,
        "files": [{"path": f.path, "size": f.size, "etag": f.etag} for f in a.files],
    }


def plan_to_text(plan: Plan) -> str:
    lines: list[str] = []
    for error in plan.errors:
        lines.append(f"Error: {error}")
    for warning in plan.warnings:
        lines.append(f"Warning: {warning}")
    if lines:
        lines.append("")
    if plan.empty:
        lines.append(
            "No changes. Models are up to date."
            if not plan.errors
            else "No changes planned for the models that could be assessed."
        )
        lines.extend(_retention_lines(plan))
        return "\n".join(lines) + "\n"
    lines.append("modelsync will perform the following actions, in this order:")
    lines.append("")
    lines.extend(_action_lines(plan.actions))
    lines.append("")
    lines.append(_summary(plan))
    lines.extend(_retention_lines(plan))
    return "\n".join(lines) + "\n"


def _action_lines(actions: Sequence[Action], why: Sequence[str] = ()) -> list[str]:
    lines: list[str] = []
    width = max(len(a.model) for a in actions)
    for i, a in enumerate(actions):
        lines.append(_action_line(a, width))
        lines.append(f"      {a.message}" + (f"; {a.priority_reason}" if a.priority_reason else ""))
        if i < len(why):
            lines.append(f"      {why[i]}")
    return lines


def _retention_lines(plan: Plan) -> list[str]:
    """What retention reports besides the actions: held back, recommended, the budget, and
    what in the cache is not modelsync's."""
    lines: list[str] = []
    held = [w for w in plan.withheld if w.reason is not Reason.RECOMMEND_ONLY]
    if held:
        lines += [
            "",
            "Held back (nothing in use is deleted or switched, nor an old revision within its "
            "grace period):",
            "",
        ]
        lines += _action_lines([w.action for w in held], [w.message for w in held])
    recommended = [w.action for w in plan.withheld if w.reason is Reason.RECOMMEND_ONLY]
    if recommended:
        freed = human_bytes(sum(a.bytes for a in recommended))
        lines += [
            "",
            f"Recommended deletions (retention.mode is recommend, so none is applied; "
            f"{freed} in all):",
            "",
        ]
        lines += _action_lines(recommended)
    if plan.budget is not None:
        lines += ["", retention_view.budget_line(plan.budget, plan.retention_mode)]
    if plan.unmanaged:
        lines += ["", "Not modelsync's (other tools' files; never deleted):"]
        lines += [
            f"  {u.repo}  {human_bytes(u.bytes)}  ({plural(len(u.commits), 'revision')})"
            for u in plan.unmanaged
        ]
    if plan.quarantined:
        lines += [
            "",
            "Quarantined (damaged bytes in no snapshot; deleted after retention.quarantine_grace):",
        ]
        lines += [
            f"  {q.repo}  {plural(q.files, 'file')}, {human_bytes(q.bytes)}"
            + (f"  ({q.expiring} due now)" if q.expiring else "")
            for q in plan.quarantined
        ]
    return lines


def _action_line(a: Action, width: int) -> str:
    symbol = _SYMBOL[a.kind].rjust(3)
    count = len(a.files)
    what = f"{plural(count, 'file')}, {human_bytes(a.bytes)}"
    return f"{symbol} {a.kind.value:<8} {a.model:<{width}}  {what}  ({a.reason.value})"


def _summary(plan: Plan) -> str:
    counts = Counter(a.kind for a in plan.actions)
    parts = [
        f"{counts[ActionKind.DOWNLOAD]} to download",
        f"{counts[ActionKind.UPDATE]} to update",
        f"{counts[ActionKind.REPAIR]} to repair",
        f"{counts[ActionKind.VERIFY]} to verify",
        f"{counts[ActionKind.DELETE]} to delete",
    ]
    text = f"Plan: {', '.join(parts)}."
    text += f"\nTransfer: {human_bytes(plan.download_bytes)}"
    if plan.freed_bytes:
        text += f"; frees: {human_bytes(plan.freed_bytes)}"
    if plan.verify_bytes:
        text += f"; hash: {human_bytes(plan.verify_bytes)}"
    if plan.disk is not None:
        fits = "fits" if plan.download_bytes <= plan.disk.free else "DOES NOT FIT"
        text += f"; free on cache disk: {human_bytes(plan.disk.free)} ({fits})"
    return text + "."


def results_to_text(results: Sequence[ActionResult]) -> str:
    """What apply did, action by action, including files repaired along the way."""
    if not results:
        return ""
    lines = ["Applied:"]
    for r in results:
        a = r.action
        mark = "ok" if r.ok else "FAILED"
        what = f"{plural(len(r.outcomes), 'file')}"
        if r.transferred:
            what += f", {human_bytes(r.transferred)} transferred"
        if a.kind is ActionKind.DELETE and r.ok:
            what += f", {human_bytes(a.bytes)} freed"
        lines.append(f"  {mark:<6} {a.kind.value} {a.model}: {what}")
        for o in r.outcomes:
            if o.repaired:
                # Damage found while verifying is fetched again at once; that may fail too.
                again = "fetched again" if o.ok else "fetching it again failed:"
                lines.append(f"         {o.path}: was damaged ({o.repaired}); {again}")
            if not o.ok:
                lines.append(f"         {o.detail}")
    return "\n".join(lines) + "\n"


def status_to_text(report: StatusReport) -> str:
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
                first_line(m.message),
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


# --------------------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class FleetMember:
    """One controller asked by ``reconcile status --from``: its status, or why there is none."""

    source: str  # the URL asked
    report: StatusReport | None
    error: str | None = None

    @property
    def node(self) -> str:
        """The node's name as its controller gives it; the URL when it did not answer."""
        return (self.report.node if self.report is not None else None) or self.source


@dataclass(frozen=True)
class FleetSummary:
    models: tuple[str, ...]  # every model some node declares, in the order first seen
    available_everywhere: tuple[str, ...]  # AVAILABLE on every node that answered and declares it
    behind: tuple[str, ...]  # nodes that answered with a declared model not AVAILABLE
    unreachable: tuple[str, ...]  # the sources that did not answer
    bytes_to_fetch: int  # over every node that answered


def summarize_fleet(members: Sequence[FleetMember]) -> FleetSummary:
    answered = [m.report for m in members if m.report is not None]
    names = tuple(dict.fromkeys(s.name for r in answered for s in r.models))
    everywhere = tuple(
        name
        for name in names
        if all(s.phase is Phase.AVAILABLE for r in answered for s in r.models if s.name == name)
    )
    behind = tuple(
        m.node
        for m in members
        if m.report is not None and any(s.phase is not Phase.AVAILABLE for s in m.report.models)
    )
    return FleetSummary(
        models=names,
        available_everywhere=everywhere,
        behind=behind,
        unreachable=tuple(m.source for m in members if m.report is None),
        bytes_to_fetch=sum(_to_fetch(s) for r in answered for s in r.models),
    )


def _to_fetch(model: ModelStatus) -> int:
    """Bytes a node still has to fetch for ``model``: what its transfer has left, else what
    the model lacks on disk (a damaged file counts whole: it is fetched again)."""
    if model.phase is Phase.AVAILABLE:
        return 0
    if model.progress is not None:
        return max(model.progress.bytes_total - model.progress.bytes_done, 0)
    return max(model.expected_size - model.size_on_disk, 0)


def fleet_to_dict(members: Sequence[FleetMember]) -> dict[str, Any]:
    summary = summarize_fleet(members)
    return {
        "nodes": [
            {
                "node": m.node,
                "source": m.source,
                "reachable": m.report is not None,
                "error": m.error,
                "models": {}
                if m.report is None
                else {
                    s.name: {
                        "phase": s.phase.value,
                        "message": s.message,
                        "bytes_to_fetch": _to_fetch(s),
                        "update_available": s.update_available,
                    }
                    for s in m.report.models
                },
            }
            for m in members
        ],
        "summary": {
            "nodes": len(members),
            "models": list(summary.models),
            "available_everywhere": list(summary.available_everywhere),
            "nodes_behind": list(summary.behind),
            "unreachable": list(summary.unreachable),
            "bytes_to_fetch": summary.bytes_to_fetch,
        },
    }


def fleet_to_text(members: Sequence[FleetMember]) -> str:
    """One row per node, one column per model: each cell the model's phase there (with the
    transfer's progress), ``-`` where the node does not declare it; then a summary line."""
    summary = summarize_fleet(members)
    rows = [("NODE", *summary.models, "NOTE")]
    for m in members:
        if m.report is None:
            rows.append((m.node, *("?" for _ in summary.models), f"unreachable: {m.error}"))
            continue
        found = {s.name: s for s in m.report.models}
        cells = (_fleet_cell(found.get(name)) for name in summary.models)
        rows.append((m.node, *cells, "; ".join(first_line(e) for e in m.report.errors)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        ("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip()
        for r in rows
    ]
    return "\n".join([*lines, "", _fleet_line(summary, len(members))])


def _fleet_cell(model: ModelStatus | None) -> str:
    if model is None:
        return "-"
    if model.progress is not None and model.phase is not Phase.AVAILABLE:
        return f"{model.phase.value} {model.progress.fraction:.0%}"
    return model.phase.value


def _fleet_line(summary: FleetSummary, nodes: int) -> str:
    answered = nodes - len(summary.unreachable)
    parts = [
        f"{len(summary.available_everywhere)} of {plural(len(summary.models), 'model')} "
        f"AVAILABLE on all {plural(answered, 'node')} that answered",
        f"{plural(len(summary.behind), 'node')} behind"
        + (f" ({', '.join(summary.behind)})" if summary.behind else ""),
        f"{human_bytes(summary.bytes_to_fetch)} still to fetch",
    ]
    if summary.unreachable:
        parts.append(f"{len(summary.unreachable)} of {nodes} unreachable")
    return "; ".join(parts)

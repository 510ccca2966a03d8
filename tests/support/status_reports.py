"""Status documents as a pass writes them, for tests of what reads them (the readiness
route, ``reconcile wait``, the fleet view)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from controller.domain import Phase
from controller.domain.status import ModelStatus, StatusReport, StatusSummary

NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)


def model_status(name: str, phase: Phase, message: str = "", **fields: Any) -> ModelStatus:
    values: dict[str, Any] = {
        "name": name,
        "repo": f"org/{name}",
        "revision": "main",
        "commit": None,
        "phase": phase,
        "reason": "Verified" if phase is Phase.AVAILABLE else "Missing",
        "message": message,
        "size_on_disk": 0,
        "expected_size": 10,
        "integrity_score": None,
        "priority": "auto",
        "policy": "always",
        "last_checked": NOW,
    }
    return ModelStatus(**{**values, **fields})


def status_report(
    *models: ModelStatus, generation: str = "g", node: str | None = None
) -> StatusReport:
    summary = StatusSummary(
        models=len(models),
        phases={},
        size_on_disk=sum(m.size_on_disk for m in models),
        expected_size=sum(m.expected_size for m in models),
        ready=all(m.phase is Phase.AVAILABLE for m in models),
    )
    return StatusReport(
        observedGeneration=generation,
        updatedAt=NOW,
        summary=summary,
        models=tuple(models),
        node=node,
    )

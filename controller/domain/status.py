"""The status written back after a reconcile: one phase, reason and message per model.

These are the documents themselves (the status file, ``reconcile status --json``, the request
API's responses); ``controller.planning.status`` derives them, ``controller.engine.status_file``
writes and reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.domain.kinds import API_VERSION, Phase, Reason
from controller.domain.progress import ModelProgress

STATUS_KIND = "ModelSetStatus"


class DeletionStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    model: str
    repo: str
    commit: str
    bytes: int = Field(description="bytes the deletion frees (blobs nothing else links)")
    reason: Reason = Field(description="the rule that chose it")
    message: str
    state: Literal["planned", "recommended", "held"] = Field(
        description="planned: the next apply deletes it; recommended: retention.mode is "
        "recommend, nothing is deleted; held: the model is in use, or an old revision is "
        "within its grace period (held_because says which, and until when)"
    )
    held_because: str | None = None


class UnmanagedStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    repo: str
    size_on_disk: int = Field(description="bytes of blobs nothing of modelsync's refers to")
    commits: tuple[str, ...]


class QuarantineStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    repo: str
    files: int = Field(description="damaged files moved to the repo's .quarantine/")
    bytes: int = Field(description="their size on disk (counted in managed_bytes)")


class RetentionStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    mode: str
    budget_bytes: int | None = Field(default=None, description="None: no budget known")
    budget_source: str | None = None
    managed_bytes: int | None = Field(
        default=None, description="what modelsync keeps on disk now (owned or needed)"
    )
    fits: bool | None = Field(
        default=None, description="the models, after the planned transfers and deletions"
    )
    deletions: tuple[DeletionStatus, ...] = ()
    unmanaged: tuple[UnmanagedStatus, ...] = Field(
        default=(), description="other tools' models and revisions in the cache: never deleted"
    )
    quarantined_bytes: int = Field(
        default=0,
        description="damaged bytes kept in .quarantine/ folders (in no snapshot, still on disk) "
        "until retention.quarantine_grace has passed",
    )
    quarantined_files: int = 0
    quarantined: tuple[QuarantineStatus, ...] = Field(
        default=(), description="the quarantined bytes, repo by repo"
    )



class Failure(BaseModel):
    """Why a model's last apply did not finish."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    reason: Reason
    message: str
    files: tuple[str, ...] = ()


class ProbeStatus(BaseModel):
    """The manifest's load test, as the latest health check ran it."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    ok: bool
    exit_code: int | None = Field(description="None: timed out or could not start")
    checked_at: datetime
    message: str


class ModelStatus(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str
    repo: str
    revision: str
    commit: str | None
    phase: Phase
    reason: Reason
    message: str
    size_on_disk: int
    expected_size: int
    integrity_score: float | None = Field(
        description="fraction of the expected bytes present and verified"
    )
    missing_files: tuple[str, ...] = ()
    corrupt_files: tuple[str, ...] = ()
    unverified_files: tuple[str, ...] = ()
    update_available: bool = False
    upstream_commit: str | None = None
    priority: str = Field(description="the priority the manifest declares")
    policy: str
    last_checked: datetime
    effective_priority: str = Field(
        default="low", description="the declared priority, raised by usage (auto: from usage)"
    )
    usage_frequency: float = Field(default=0.0, description="uses per day over the usage window")
    last_used: datetime | None = None
    average_generation_seconds: float | None = None
    performance_score: float | None = Field(
        default=None,
        description="window-average generation time over the last week's, at most 1.0",
    )
    queue_position: int | None = Field(
        default=None, description="1-based place in the order of pending work; None: none"
    )
    progress: ModelProgress | None = Field(
        default=None, description="the transfer under way: bytes, files, throughput, ETA"
    )
    in_use: bool = Field(
        default=False, description="a live lease holds it: not deleted, its ref not switched"
    )
    last_health_check: datetime | None = Field(
        default=None, description="when `reconcile verify` or a scheduled check last ran"
    )
    probe: ProbeStatus | None = Field(
        default=None, description="the latest probe of the model's commit, when it has one"
    )


class StatusSummary(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)
    models: int
    phases: dict[str, int]
    size_on_disk: int
    expected_size: int
    ready: bool = Field(description="every `always` model is AVAILABLE")


class StatusReport(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, defer_build=True)

    api_version: str = Field(default=API_VERSION, alias="apiVersion")
    kind: str = STATUS_KIND
    observed_generation: str = Field(alias="observedGeneration")
    updated_at: datetime = Field(alias="updatedAt")
    summary: StatusSummary
    models: tuple[ModelStatus, ...]
    errors: tuple[str, ...] = ()
    retention: RetentionStatus | None = None
    node: str | None = Field(
        default=None,
        description="the node whose cache this is; set by a controller's API (the fleet view "
        "names its rows by it), absent from the status file",
    )

    def model(self, name: str) -> ModelStatus | None:
        return next((m for m in self.models if m.name == name), None)



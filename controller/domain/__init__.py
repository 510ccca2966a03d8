"""The values passed between the loop's stages, and the pure rules every stage shares.

- ``kinds``: the vocabulary (phases, priorities, policies, action kinds, reasons);
- ``desired`` (what the manifests declare), ``observed`` (what the machine and the hub say),
  ``plan`` (ordered actions), ``status`` (the report written back), ``progress`` (transfers);
- the rules on those values that the reconcilers and the planner both need: ``assessment``
  (how each model stands), ``selection`` (which files a model selects), ``usage`` (uses/day
  and effective priorities), ``budget`` (whether bytes fit), ``units`` (sizes for people).

May: define immutable values and pure functions of them.  May not: read or write anything,
read the clock, or import any other part of modelsync (import-linter checks this).  That is
what lets planning be a pure function that tests drive from tables.

The names most code needs are re-exported here: ``from controller.domain import Plan``.
"""

from controller.domain.desired import (
    DEFAULT_BRANCH,
    DesiredModel,
    DesiredState,
    Probe,
    RetentionPolicy,
)
from controller.domain.kinds import (
    API_VERSION,
    COMMIT_RE,
    SHA256_RE,
    TRANSFER_KINDS,
    ActionKind,
    Phase,
    Policy,
    Priority,
    Reason,
    RetentionMode,
    UpdatePolicy,
    is_commit,
)
from controller.domain.observed import (
    CachedFile,
    CachedRepo,
    DeletionRecord,
    Disk,
    Eviction,
    FileWork,
    HealthCheck,
    Lease,
    Observation,
    OwnedFile,
    PartialFile,
    QuarantinedFile,
    RemoteFile,
    RemoteProblem,
    RemoteRevision,
    UsageStats,
    Verification,
)
from controller.domain.plan import Action, BudgetFit, Plan, Quarantine, Unmanaged, Withheld

__all__ = [
    "API_VERSION", "COMMIT_RE", "DEFAULT_BRANCH", "SHA256_RE", "TRANSFER_KINDS", "Action",
    "ActionKind", "BudgetFit", "CachedFile", "CachedRepo", "DeletionRecord", "DesiredModel",
    "DesiredState", "Disk", "Eviction", "FileWork", "HealthCheck", "Lease", "Observation",
    "OwnedFile", "PartialFile", "Phase", "Plan", "Policy", "Priority", "Probe", "Quarantine",
    "QuarantinedFile", "Reason", "RemoteFile", "RemoteProblem", "RemoteRevision",
    "RetentionMode", "RetentionPolicy", "Unmanaged", "UpdatePolicy", "UsageStats",
    "Verification", "Withheld", "is_commit",
]

"""The plan: ordered actions with a kind and a reason, and what was held back and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controller.domain.kinds import TRANSFER_KINDS, ActionKind, Priority, Reason, RetentionMode
from controller.domain.observed import Disk, FileWork


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    model: str
    repo: str
    revision: str
    commit: str
    files: tuple[FileWork, ...]
    bytes: int  # bytes it transfers (download/repair/update), reads (verify) or frees (delete)
    reason: Reason
    message: str
    priority: Priority | None = None  # the model's effective priority, set by the planner
    priority_reason: str = ""  # why it has that priority, e.g. "auto: 2.3 uses/day"


@dataclass(frozen=True)
class Withheld:
    """An action the plan shows but does not carry out, and why (in use, recommend mode)."""

    action: Action
    reason: Reason  # IN_USE, GRACE_PERIOD or RECOMMEND_ONLY
    message: str


@dataclass(frozen=True)
class Unmanaged:
    """Part of the cache modelsync neither downloaded, adopted nor needs: never deleted."""

    repo: str
    bytes: int  # its blobs that nothing of modelsync's refers to, each counted once
    commits: tuple[str, ...]


@dataclass(frozen=True)
class Quarantine:
    """A repo's damaged bytes in ``.quarantine/`` as observed: on disk, in no snapshot, and
    counted in the budget until retention deletes them (``QuarantineExpired``)."""

    repo: str
    files: int
    bytes: int
    expiring: int  # of ``files``, those whose grace period is over (this plan deletes them)


@dataclass(frozen=True)
class BudgetFit:
    """The disk budget against what modelsync keeps: now, plus transfers, minus deletions."""

    budget: int
    source: str  # where the number comes from, for messages
    on_disk: int  # bytes of what modelsync manages (owned or needed), each blob once
    transfers: int
    freed: int  # by the plan's deletions (and, in recommend mode, its recommended ones)

    @property
    def total(self) -> int:
        return self.on_disk + self.transfers - self.freed

    @property
    def fits(self) -> bool:
        return self.total <= self.budget


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    generation: str
    created_at: datetime
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # problems that make the plan incomplete (exit 1)
    disk: Disk | None = None  # the cache filesystem as observed, for the fit check
    withheld: tuple[Withheld, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()
    quarantined: tuple[Quarantine, ...] = ()
    budget: BudgetFit | None = None
    retention_mode: RetentionMode = RetentionMode.ENFORCE

    @property
    def download_bytes(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind in TRANSFER_KINDS)

    @property
    def verify_bytes(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind is ActionKind.VERIFY)

    @property
    def freed_bytes(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind is ActionKind.DELETE)

    @property
    def empty(self) -> bool:
        return not self.actions

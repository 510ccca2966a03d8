"""What every reconciler shares: the capabilities ``apply`` may use, and its result.

Reconcilers decide *what* to do and in which order; the :class:`Workspace` they are handed
does the I/O (HTTP, hashing, the cache's files, the state store).  That keeps every
reconciler module free of I/O imports, which the import-linter contract enforces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.domain import Action, ActionKind, FileWork, Reason
from controller.domain.assessment import Assessment


@dataclass(frozen=True)
class FileOutcome:
    path: str
    ok: bool
    reason: Reason | None = None  # why it failed
    detail: str = ""
    transferred: int = 0
    repaired: str = ""  # what was wrong with the file before it was fetched again


@dataclass(frozen=True)
class ActionResult:
    action: Action
    outcomes: tuple[FileOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failures(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    @property
    def transferred(self) -> int:
        return sum(o.transferred for o in self.outcomes)


class Workspace(Protocol):
    """The I/O an action may perform on one model's cache and hub."""

    def fetch(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        """Download ``files`` of ``action.commit`` into the cache and verify each one."""
        ...

    def verify(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        """Hash files already in the cache against their expected digests."""
        ...

    def quarantine(self, action: Action, files: Sequence[FileWork]) -> None:
        """Move damaged files out of the snapshot so no application can load them."""
        ...

    def point_ref(self, action: Action) -> None:
        """Point ``refs/<revision>`` at ``action.commit`` (the engine calls this only once
        every action of the model succeeded, so the ref never names an incomplete commit)."""
        ...

    def delete(self, action: Action) -> tuple[FileOutcome, ...]:
        """Remove ``action.files`` from snapshot ``action.commit``, then whatever of theirs
        nothing refers to any more: refs to the emptied snapshot, and blobs no remaining
        entry links.  Refused while a live lease holds the model; crash-safe at any instant."""
        ...

    def discard_quarantined(self, action: Action) -> tuple[FileOutcome, ...]:
        """Remove ``action.files`` (each ``.quarantine/<name>``) from the repo's quarantine:
        damaged bytes no snapshot links, kept only for whoever investigates them."""
        ...


def action_for(
    a: Assessment, kind: ActionKind, files: tuple[FileWork, ...], reason: Reason, message: str
) -> Action:
    assert a.commit is not None
    return Action(
        kind=kind,
        model=a.model.name,
        repo=a.model.repo,
        revision=a.model.revision,
        commit=a.commit,
        files=files,
        bytes=a.transfer_bytes(files),
        reason=reason,
        message=message,
    )

"""Integrity: verify what is on disk, and repair what is damaged.

``plan`` proposes a ``repair`` for every model with damaged files (wrong size, or content
that does not hash to the blob's name) and a ``verify`` for files present but never
checked, which is how a model downloaded by another tool is adopted without downloading
it again.  A repair re-fetches only the damaged files, never the whole model.
"""

from __future__ import annotations

from dataclasses import replace

from controller.domain import Action, ActionKind, Reason
from controller.domain.assessment import Assessment
from controller.domain.units import human_bytes, plural
from reconcilers.base import ActionResult, FileOutcome, Workspace, action_for

_DAMAGE = {Reason.CHECKSUM_MISMATCH, Reason.SIZE_MISMATCH}


def plan(assessments: tuple[Assessment, ...]) -> list[Action]:
    actions: list[Action] = []
    for a in assessments:
        if a.commit is None or a.model.suspend or a.retired:
            continue
        if a.damaged:
            files = tuple(d.file for d in a.damaged)
            detail = ", ".join(f"{d.file.path} ({d.detail})" for d in a.damaged[:3])
            more = f" and {len(a.damaged) - 3} more" if len(a.damaged) > 3 else ""
            actions.append(
                action_for(
                    a, ActionKind.REPAIR, files, Reason.CORRUPTED, f"damaged: {detail}{more}"
                )
            )
        if a.unverified:
            actions.append(
                action_for(
                    a,
                    ActionKind.VERIFY,
                    a.unverified,
                    Reason.UNVERIFIED,
                    f"{plural(len(a.unverified), 'file')} present but unverified "
                    f"({human_bytes(sum(f.size for f in a.unverified))} to hash)",
                )
            )
    return actions


def apply(action: Action, workspace: Workspace) -> ActionResult:
    if action.kind is ActionKind.REPAIR:
        # Damaged bytes leave the snapshot before anything else, so an application never
        # loads them while the good copy is on its way.
        workspace.quarantine(action, action.files)
        outcomes = workspace.fetch(action, action.files)
    else:
        outcomes = _verify_then_repair(action, workspace)
    return ActionResult(action, outcomes)


def _verify_then_repair(action: Action, workspace: Workspace) -> tuple[FileOutcome, ...]:
    """A file found damaged while verifying is fetched again in the same pass.

    The workspace has already moved the damaged bytes aside, so waiting for the next
    reconcile would only leave the model unavailable for longer.
    """
    checked = workspace.verify(action, action.files)
    damaged = {o.path for o in checked if o.reason in _DAMAGE}
    if not damaged:
        return checked
    found = {o.path: o.detail for o in checked if o.path in damaged}
    refetched = {
        o.path: replace(o, repaired=found[o.path])
        for o in workspace.fetch(action, [f for f in action.files if f.path in damaged])
    }
    return tuple(refetched.get(o.path, o) for o in checked)

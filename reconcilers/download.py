"""Downloads: fetch the selected files a model is missing, and move branches forward.

``plan`` proposes a ``download`` for a model whose files are missing, or an ``update`` when
the cache already serves an older commit of the same revision; in both cases only the
missing files travel.  ``apply`` fetches them (each verified on arrival by the workspace)
and, once every action of the model succeeded, the engine points the revision's ref at it: until
that moment applications keep loading the old snapshot, so an update has no downtime.
"""

from __future__ import annotations

from controller.domain import Action, ActionKind, Reason
from controller.domain.assessment import Assessment
from controller.domain.units import human_bytes, plural
from reconcilers.base import ActionResult, Workspace, action_for


def plan(assessments: tuple[Assessment, ...]) -> list[Action]:
    actions: list[Action] = []
    for a in assessments:
        if a.commit is None or a.model.suspend or a.on_demand_unrequested or a.retired:
            continue
        moving = a.served_commit is not None and a.served_commit != a.commit
        if moving and (a.missing or a.ref_behind):
            actions.append(
                action_for(
                    a, ActionKind.UPDATE, a.missing, Reason.UPSTREAM_MOVED, _update_message(a)
                )
            )
        elif a.missing:
            reason = Reason.MISSING if a.absent else Reason.INCOMPLETE
            actions.append(
                action_for(a, ActionKind.DOWNLOAD, a.missing, reason, _missing_message(a))
            )
        elif a.ref_behind and not a.unverified:
            actions.append(
                action_for(
                    a,
                    ActionKind.UPDATE,
                    (),
                    Reason.REVISION_CHANGED,
                    f"point refs/{a.model.revision} at {a.commit[:12]}",
                )
            )
    return actions


def apply(action: Action, workspace: Workspace) -> ActionResult:
    outcomes = workspace.fetch(action, action.files)
    return ActionResult(action, outcomes)


def _missing_message(a: Assessment) -> str:
    if a.absent:
        return (
            f"not in the cache; {plural(len(a.missing), 'file')}, {human_bytes(a.expected_bytes)}"
        )
    return (
        f"{len(a.missing)} of {len(a.files)} files missing "
        f"({human_bytes(a.transfer_bytes(a.missing))} to fetch)"
    )


def _update_message(a: Assessment) -> str:
    assert a.served_commit is not None and a.commit is not None
    moved = f"{a.model.revision} moved {a.served_commit[:12]} -> {a.commit[:12]}"
    if not a.missing:
        return f"{moved}; files already present"
    changed = sum(f.etag not in a.reusable for f in a.missing)
    linked = len(a.missing) - changed
    return (
        f"{moved}; {plural(changed, 'changed file')}, "
        f"{human_bytes(a.transfer_bytes(a.missing))}; {plural(linked, 'unchanged file')} linked"
    )

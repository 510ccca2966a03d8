"""Whether a plan fits a disk budget: ``--budget-bytes N``, or the retention percentage.

The planner's own check compares transfers with the free space of the disk it can see.  In CI
that disk is the runner's, which says nothing about the machine the plan is for, so the fit is
checked against a budget instead: what the models already hold plus what the plan transfers
must not exceed it.  Pure: the caller measures the disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.domain import ActionKind, DesiredModel, Disk, Observation, Plan
from controller.units import human_bytes


@dataclass(frozen=True)
class Budget:
    bytes: int
    source: str  # where the number comes from, for the message


def explicit(n: int) -> Budget:
    return Budget(n, f"--budget-bytes {n}")


def from_percent(percent: float, disk: Disk) -> Budget:
    """``retention.max_storage_usage_percent`` of the cache's disk."""
    return Budget(
        int(disk.total * percent / 100),
        f"retention.max_storage_usage_percent {percent:g}% of the cache disk's "
        f"{human_bytes(disk.total)}",
    )


def used_by_models(observed: Observation, models: Iterable[DesiredModel]) -> int:
    """Bytes the declared models' blobs take in the cache, each blob counted once."""
    blobs: dict[tuple[str, str], int] = {}
    for repo in sorted({m.repo for m in models}):
        for files in observed.repo(repo).snapshots.values():
            for f in files.values():
                if f.size > 0:
                    blobs[(repo, f.blob or f.path)] = f.size
    return sum(blobs.values())


def check(plan: Plan, *, on_disk: int, budget: Budget) -> tuple[list[str], list[str]]:
    """(errors, warnings): an error when the plan's transfers take the disk over budget.

    A disk already over budget with nothing to transfer is only a warning: the plan does not
    make it worse, and freeing space is retention's job.
    """
    transfers = sum(a.bytes for a in plan.actions if a.kind is not ActionKind.VERIFY)
    total = on_disk + transfers
    if total <= budget.bytes:
        return [], []
    numbers = (
        f"{_amount(on_disk)} on disk + {_amount(transfers)} to transfer = {_amount(total)}, "
        f"{_amount(total - budget.bytes)} more than the budget of {_amount(budget.bytes)} "
        f"({budget.source})"
    )
    if transfers == 0:
        return [], [f"already over the disk budget: {numbers}"]
    return [
        f"the plan does not fit the disk budget: {numbers}; raise the budget, free space "
        "on the machine, or narrow the models' include patterns"
    ], []


def _amount(n: int) -> str:
    # Exact bytes too: CI logs are read next to `--budget-bytes N` and `du -b`.
    return f"{human_bytes(n)} ({n} bytes)"

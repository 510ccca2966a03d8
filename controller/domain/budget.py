"""Whether a plan fits a disk budget: ``--budget-bytes N``, or the retention percentage.

The planner's own check compares transfers with the free space of the disk it can see.  In CI
that disk is the runner's, which says nothing about the machine the plan is for, so the fit is
checked against a budget instead: what the models already hold, plus what the plan transfers,
minus what its deletions free, must not exceed it.  Retention (``reconcilers.retention``)
chooses evictions until it does; this module holds the numbers and their wording.  Pure: the
caller measures the disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.domain import BudgetFit, Disk, Plan
from controller.domain.units import human_bytes


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


def check(plan: Plan, *, on_disk: int, budget: Budget) -> tuple[list[str], list[str]]:
    """(errors, warnings): an error when the plan's transfers take the disk over budget.

    For a plan made without the machine's cache (``--state``), so retention could not choose
    evictions there.  A disk already over budget with nothing to transfer is then only a
    warning: the plan does not make it worse.
    """
    fit = BudgetFit(
        budget=budget.bytes,
        source=budget.source,
        on_disk=on_disk,
        transfers=plan.download_bytes,
        freed=plan.freed_bytes,
    )
    if fit.fits:
        return [], []
    if fit.transfers == 0:
        return [], [f"already over the disk budget: {numbers(fit)}"]
    return [f"the plan does not fit the disk budget: {numbers(fit)}; {REMEDY}"], []


REMEDY = "raise the budget, free space on the machine, or narrow the models' include patterns"


def numbers(fit: BudgetFit) -> str:
    """The arithmetic of a fit, in the words and order a reader checks it in."""
    freed = f" - {_amount(fit.freed)} freed" if fit.freed else ""
    total = (
        f"{_amount(fit.on_disk)} on disk + {_amount(fit.transfers)} to transfer{freed} = "
        f"{_amount(fit.total)}"
    )
    if fit.fits:
        return f"{total}, within the budget of {_amount(fit.budget)} ({fit.source})"
    return (
        f"{total}, {_amount(fit.total - fit.budget)} more than the budget of "
        f"{_amount(fit.budget)} ({fit.source})"
    )


def _amount(n: int) -> str:
    # Exact bytes too: CI logs are read next to `--budget-bytes N` and `du -b`.
    return f"{human_bytes(n)} ({n} bytes)"

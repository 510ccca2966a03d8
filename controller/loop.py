"""One pass of the loop: desired + observed -> plan -> apply -> status.

The CLI's ``--plan`` and ``--apply`` and the long-running controller all go through here, so
the three ways of using modelsync cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from controller import status
from controller.apply import ApplyOutcome, apply_plan
from controller.domain import DesiredState, Observation, Phase, Plan
from controller.manifest import Downloads
from controller.observe import observe
from controller.plan import assess_all, plan
from controller.state import StateStore
from controller.status import Failure, StatusReport
from controller.workspace import CacheWorkspace

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Reconciled:
    plan: Plan
    outcome: ApplyOutcome
    status: StatusReport

    @property
    def ok(self) -> bool:
        return self.outcome.ok and not self.plan.errors


def make_plan(
    desired: DesiredState, *, offline: bool = False, clock: Clock = utcnow
) -> tuple[Plan, Observation]:
    """Plan without changing anything on disk (the state store is opened read-only)."""
    observed = observe(desired, now=clock(), offline=offline)
    return plan(desired, observed, clock()), observed


def reconcile(
    desired: DesiredState,
    *,
    downloads: Downloads | None = None,
    offline: bool = False,
    clock: Clock = utcnow,
) -> Reconciled:
    """``downloads`` is the manifest's ``spec.downloads`` (concurrency, bandwidth limit)."""
    settings = downloads or Downloads()
    with StateStore.open(Path(desired.state_dir)) as store:
        observed = observe(desired, now=clock(), offline=offline, store=store)
        the_plan = plan(desired, observed, clock())
        before = assess_all(desired, observed)

        def publish(in_progress: dict[str, Phase], failures: dict[str, Failure]) -> None:
            status.write(
                desired.status_file,
                status.derive(
                    before,
                    generation=desired.generation,
                    now=clock(),
                    failures=failures,
                    in_progress=in_progress,
                    errors=the_plan.errors,
                ),
            )

        workspace = CacheWorkspace(
            cache_dir=desired.cache_dir,
            endpoint=desired.endpoint,
            store=store,
            clock=clock,
            concurrency=settings.concurrency,
            max_bandwidth=settings.max_bandwidth_bytes,
        )
        outcome = apply_plan(the_plan, workspace, on_phase=publish)
        # Re-read the disk rather than trusting the results: the status describes what is
        # there, including anything another process changed meanwhile.
        after = observe(desired, now=clock(), store=store, remote=observed.remote)
        report = status.derive(
            assess_all(desired, after),
            generation=desired.generation,
            now=clock(),
            failures=outcome.failures,
            errors=the_plan.errors,
        )
        status.write(desired.status_file, report)
    return Reconciled(the_plan, outcome, report)

"""One pass of the loop: desired + observed -> plan -> apply -> status.

The CLI's ``--plan`` and ``--apply`` and the long-running controller all go through here, so
the three ways of using modelsync cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller import status
from controller.apply import ApplyOutcome, apply_plan
from controller.clock import utcnow
from controller.domain import DesiredState, Observation, Phase, Plan, RemoteRevision
from controller.manifest import Downloads
from controller.observe import observe
from controller.plan import assess_all, plan, queue
from controller.state import StateStore
from controller.status import Failure, StatusReport
from controller.usage import window_start
from controller.workspace import CacheWorkspace

Clock = Callable[[], datetime]


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
    pinned: Mapping[str, RemoteRevision] | None = None,
) -> Reconciled:
    """``downloads`` is the manifest's ``spec.downloads`` (concurrency, bandwidth limit);
    ``pinned``: models described by their lock entries, not by the hub; downloads are then
    checked against the locked hashes."""
    settings = downloads or Downloads()
    with StateStore.open(Path(desired.state_dir)) as store:
        store.prune_usage(window_start(clock(), desired.usage_window_days))
        observed = observe(desired, now=clock(), offline=offline, store=store, pinned=pinned)
        the_plan = plan(desired, observed, clock())
        before = assess_all(desired, observed)
        positions = {name: entry.position for name, entry in queue(the_plan).items()}

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
                    usage=observed.usage,
                    queue_positions=positions,
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
        settled = assess_all(desired, after)
        for a in settled:
            if a.requested and a.complete:
                store.clear_request(a.model.name)  # fulfilled: present and verified
        remaining = plan(desired, after, clock())
        report = status.derive(
            settled,
            generation=desired.generation,
            now=clock(),
            failures=outcome.failures,
            errors=the_plan.errors,
            usage=after.usage,
            queue_positions={name: e.position for name, e in queue(remaining).items()},
        )
        status.write(desired.status_file, report)
    return Reconciled(the_plan, outcome, report)

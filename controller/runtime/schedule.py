"""The controller's periodic jobs, run by APScheduler: each only asks the loop for a pass.

resync, update checks and health checks put a trigger in the loop's queue and return, so a
slow pass never piles up scheduler threads and a job never races a pass.  Usage pruning is
one short SQLite statement and runs in the scheduler's thread.  Intervals come from the
manifest's ``spec.controller`` and follow its edits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timezone
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from controller.domain.usage import window_start
from controller.manifest.loading import Loaded
from controller.runtime.loop import Controller, Trigger
from controller.store import StateStore

log = logging.getLogger("modelsync.schedule")

# Uses older than the usage window go; an hour late costs nothing, and each pass prunes too.
USAGE_PRUNE_SECONDS = 3600.0
# Each wait is its interval plus a random part of up to this fraction of it.  A fleet's nodes
# started together (a rollout, a power cut) would otherwise ask the hub or their mirror, hash
# their disks and read a shared cache in step, every interval, for as long as they run; with
# it they drift apart, as controller-runtime's jittered resyncs do.
JITTER = 0.1


class Schedule:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        # coalesce: jobs missed while the machine slept run once, not once per missed slot.
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._intervals: dict[str, float | None] = {}

    def start(self) -> None:
        self._apply(self.controller.loaded)
        self.controller.on_reload(self._apply)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def _apply(self, loaded: Loaded) -> None:
        s = loaded.settings
        jobs: dict[str, tuple[float | None, Callable[[], None]]] = {
            "resync": (s.seconds(s.resync_interval), self._ask(Trigger.RESYNC)),
            # An offline controller never asks the hub: an update check would check nothing.
            "update-check": (
                None if self.controller.offline else s.seconds(s.update_check_interval),
                self._ask(Trigger.UPDATE_CHECK),
            ),
            "health-check": (s.seconds(s.health_check_interval), self._ask(Trigger.HEALTH_CHECK)),
            "usage-prune": (USAGE_PRUNE_SECONDS, self._prune_usage),
        }
        for name, (seconds, job) in jobs.items():
            if self._intervals.get(name, -1.0) == seconds:
                continue  # unchanged: keep its phase rather than restart the interval
            self._intervals[name] = seconds
            if self.scheduler.get_job(name) is not None:
                self.scheduler.remove_job(name)
            if seconds is not None:
                trigger = IntervalTrigger(seconds=seconds, jitter=seconds * JITTER)
                self.scheduler.add_job(job, trigger, id=name, name=name)
                log.debug("job %s every %g s", name, seconds)

    def _ask(self, trigger: Trigger) -> Callable[[], None]:
        return lambda: self.controller.request(trigger)

    def _prune_usage(self) -> None:
        desired = self.controller.loaded.desired
        with StateStore.open(Path(desired.state_dir)) as store:
            pruned = store.prune_usage(
                window_start(self.controller.clock(), desired.usage_window_days)
            )
        if pruned:
            log.info("pruned %d uses older than the usage window", pruned)

"""A controller that stands still: what the HTTP API needs of a running one, with no loop.

It satisfies :class:`controller.api.app.RunningController` with real parts -- the manifests'
desired state, an event bus, a progress tracker, the metrics counts, a trigger queue and a
stop signal -- so a test serves the real app over real HTTP and reads the outcome of each
call where the loop would: the passes pending in :attr:`triggers`, the models stopped in
:attr:`running_pass`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.api.events import EventBus
from controller.api.metrics import Metrics, Sample
from controller.domain import DesiredState, Disk
from controller.domain.progress import ModelProgress
from controller.domain.status import StatusReport
from controller.engine.progress import ProgressTracker
from controller.runtime.loop import Trigger, TriggerQueue
from controller.system.cancel import StopSignal


@dataclass
class StandingController:
    desired: DesiredState
    alive: bool = True
    report: StatusReport | None = None
    problems: tuple[str, ...] = ()
    disk: Disk | None = None
    bus: EventBus = field(default_factory=EventBus)
    progress: ProgressTracker = field(default_factory=ProgressTracker)
    metrics: Metrics = field(default_factory=Metrics)
    triggers: TriggerQueue = field(default_factory=TriggerQueue)
    running_pass: StopSignal = field(default_factory=StopSignal)

    def transfers(self) -> Mapping[str, ModelProgress]:
        return self.progress.snapshot()

    def metrics_sample(self) -> Sample:
        ready = self.report is not None and self.report.summary.ready
        return self.metrics.sample(
            report=self.report,
            downloaded=self.progress.received(),
            disk=self.disk,
            budget_bytes=None if self.disk is None else self.disk.total // 2,
            ready=ready,
        )

    def reconcile_now(self) -> None:
        self.triggers.put(Trigger.RECONCILE)

    def fetch_requested(self) -> None:
        self.triggers.put(Trigger.MODEL)

    def stop_model(self, name: str) -> None:
        self.running_pass.stop_model(name)
        self.triggers.put(Trigger.MODEL)

    def resume_model(self, name: str) -> None:
        self.triggers.put(Trigger.MODEL)

    def pending(self) -> frozenset[Trigger]:
        """The passes asked for since the last look (the loop would run one for them)."""
        return self.triggers.take(timeout=0) or frozenset()

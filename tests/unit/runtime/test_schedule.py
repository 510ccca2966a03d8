"""The controller's periodic passes: controllers started at the same instant (a fleet's
rollout) do not keep firing in step.

The schedules run with APScheduler's real background scheduler; the controller they ask for
passes is a stand-in that records nothing, as these tests only read when each job fires next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.manifest import loading
from controller.manifest.loading import Loaded
from controller.runtime.loop import Trigger
from controller.runtime.schedule import JITTER, Schedule

INTERVALS = {"resync_interval": "1m", "update_check_interval": "1h", "health_check_interval": "24h"}
NODES = 8


class _Controller:
    """What a :class:`Schedule` asks of the controller: its manifest, and a pass."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.offline = False
        self.clock = lambda: datetime.now(timezone.utc)

    def on_reload(self, listener: Callable[[Loaded], None]) -> None:
        pass

    def request(self, trigger: Trigger) -> None:
        pass


def _loaded(tmp_path: Path) -> Loaded:
    controller = ", ".join(f"{key}: {value}" for key, value in INTERVALS.items())
    path = tmp_path / "models.yaml"
    path.write_text(
        "apiVersion: modelsync/v1\n"
        "kind: ModelSet\n"
        "metadata: {name: fleet}\n"
        "spec:\n"
        f"  cache: {tmp_path / 'cache'}\n"
        f"  state: {tmp_path / 'state'}\n"
        f"  controller: {{{controller}}}\n"
        "  models:\n"
        "    - {name: m, repo: org/m}\n"
    )
    return loading.load(path)


@pytest.mark.parametrize(
    ("job", "seconds"),
    [("resync", 60.0), ("update-check", 3600.0), ("health-check", 86400.0)],
)
def test_nodes_started_together_spread_their_periodic_passes(
    tmp_path: Path, job: str, seconds: float
) -> None:
    loaded = _loaded(tmp_path)
    schedules = [Schedule(_Controller(loaded)) for _ in range(NODES)]  # type: ignore[arg-type]
    before = datetime.now(timezone.utc)
    for schedule in schedules:
        schedule.start()
    after = datetime.now(timezone.utc)
    try:
        fires = [schedule.scheduler.get_job(job).next_run_time for schedule in schedules]
    finally:
        for schedule in schedules:
            schedule.stop()
    interval = timedelta(seconds=seconds)
    for fire in fires:
        # Never sooner than the interval, never later than a tenth more.
        assert before + interval <= fire <= after + interval * (1 + JITTER)
    # Started within moments, they fire far apart: eight uniform draws over the tenth all fall
    # within a tenth of it with a probability below one in a million.
    assert max(fires) - min(fires) > (after - before) + interval * JITTER / 10

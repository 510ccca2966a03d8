"""Health checks: the latest one of each model, whatever its probe said."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controller.domain import HealthCheck
from controller.store import StateStore
from tests.support.factories import C1, C2, NOW


@pytest.mark.parametrize(
    "check",
    [
        HealthCheck("a", C1, NOW, files_ok=True),
        HealthCheck("a", C1, NOW, files_ok=True, probe_ok=True, probe_exit=0),
        HealthCheck("a", C1, NOW, files_ok=True, probe_ok=False, probe_message="timed out"),
        HealthCheck("a", C1, NOW, files_ok=False, probe_ok=False, probe_exit=3, probe_message="x"),
    ],
    ids=["no-probe", "probe-passed", "probe-timed-out", "files-and-probe-failed"],
)
def test_a_health_check_round_trips(tmp_path: Path, check: HealthCheck) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_health(check)
    with StateStore.open(tmp_path) as store:
        assert store.health_checks() == {"a": check}


def test_only_the_latest_check_of_each_model_is_kept(store: StateStore) -> None:
    store.record_health(HealthCheck("b", C1, NOW, files_ok=False))
    store.record_health(HealthCheck("a", C1, NOW, files_ok=False))
    later = HealthCheck("a", C2, NOW + timedelta(hours=1), files_ok=True, probe_ok=True)
    store.record_health(later)
    assert store.health_checks() == {"a": later, "b": HealthCheck("b", C1, NOW, files_ok=False)}
    assert list(store.health_checks()) == ["a", "b"]

"""Usage records: derivations (pure), and the client recording uses from concurrent writers.

The store's SQL for them is tested in ``tests/unit/store/test_usage.py``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from controller.api.client import ModelAvailability, UnknownModelError
from controller.domain import UsageStats, usage
from controller.domain.usage import UsageAggregate, UsageEvent
from controller.store import DB_FILENAME, StateStore

REPO_ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def stats_of(*events: UsageEvent, window: int = 30) -> dict[str, UsageStats]:
    aggregates = usage.aggregate(
        events,
        since=usage.window_start(NOW, window),
        recent_since=usage.recent_start(NOW, window),
    )
    return usage.derive(aggregates.values(), window_days=window)


# --------------------------------------------------------------------------- derivations


def test_uses_per_day_is_averaged_over_the_whole_window() -> None:
    events = [UsageEvent("m", ago(d)) for d in (0.5, 1, 2, 10, 29.9)]
    (m,) = stats_of(*events).values()
    assert m.uses == 5 and m.uses_per_day == pytest.approx(5 / 30)
    assert m.last_used == ago(0.5)


def test_uses_outside_the_window_do_not_count() -> None:
    result = stats_of(UsageEvent("m", ago(31)), UsageEvent("n", ago(2)), window=30)
    assert set(result) == {"n"}
    assert stats_of(UsageEvent("m", ago(6)), window=7)["m"].uses_per_day == pytest.approx(1 / 7)


def test_average_generation_time_ignores_uses_without_one() -> None:
    events = [UsageEvent("m", ago(1), 10.0), UsageEvent("m", ago(2), 20.0), UsageEvent("m", ago(3))]
    m = stats_of(*events)["m"]
    assert m.uses == 3 and m.average_generation_seconds == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("timings", "score"),
    [
        pytest.param([], None, id="no-timings"),
        pytest.param([(20, 10.0)], None, id="no-recent-timings"),
        pytest.param([(1, 10.0), (20, 10.0)], 1.0, id="steady"),
        pytest.param([(1, 5.0), (20, 10.0), (25, 15.0)], 1.0, id="faster-is-capped-at-1"),
        # window average (10+10+40)/3 = 20; recent average 40: half as fast as usual.
        pytest.param([(1, 40.0), (20, 10.0), (25, 10.0)], 0.5, id="recently-twice-as-slow"),
        pytest.param([(1, 0.0), (2, 0.0)], 1.0, id="instant"),
    ],
)
def test_performance_score(timings: list[tuple[float, float]], score: float | None) -> None:
    events = [UsageEvent("m", ago(d), s) for d, s in timings] or [UsageEvent("m", ago(1))]
    assert stats_of(*events)["m"].performance_score == score


@pytest.mark.parametrize(
    ("rate", "text"), [(0.0, "0"), (0.1, "0.1"), (1 / 30, "0.03"), (2.5, "2.5"), (0.004, "0.004")]
)
def test_rates_read_well(rate: float, text: str) -> None:
    assert usage.format_rate(rate) == text


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        usage.derive([], window_days=0)


# --------------------------------------------------------------------------- the client


def write_manifest(root: Path, *names: str, **spec: object) -> Path:
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "usage-test"},
        "spec": {
            "cache": str(root / "cache"),
            "state": str(root / "state"),
            "endpoint": "http://127.0.0.1:9",
            **spec,
            "models": [{"name": n, "repo": f"org/{n}"} for n in names],
        },
    }
    path = root / "models.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_client_records_uses_and_status_shows_them(tmp_path: Path) -> None:
    clock = FakeClock(ago(3))
    with ModelAvailability(write_manifest(tmp_path, "a", "b"), clock=clock) as client:
        for day in (3, 2, 1):
            clock.now = ago(day)
            for _ in range(3):
                client.record_use("a", generation_seconds=12.0)
        client.record_use("b")
        clock.now = NOW
        a, b = client.status("a"), client.status("b")
    assert (a.usage_frequency, a.last_used, a.average_generation_seconds) == (0.3, ago(1), 12.0)
    assert (a.effective_priority, a.performance_score) == ("medium", 1.0)
    assert (b.usage_frequency, b.effective_priority, b.average_generation_seconds) == (
        pytest.approx(1 / 30, abs=1e-6),
        "low",
        None,
    )


def test_client_rejects_unknown_models_naming_the_declared_ones(tmp_path: Path) -> None:
    with ModelAvailability(write_manifest(tmp_path, "a", "b")) as client:
        with pytest.raises(UnknownModelError, match="unknown model 'c'; declared models: a, b"):
            client.record_use("c")
        with pytest.raises(UnknownModelError):
            client.status("c")


def test_client_prunes_uses_older_than_the_configured_window(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, "m", usage={"window_days": 30})
    with StateStore.open(tmp_path / "state") as store:
        store.record_use("m", ago(31))
        store.record_use("m", ago(29))
    with ModelAvailability(manifest, clock=FakeClock(NOW)) as client:
        assert client.status("m").usage_frequency == pytest.approx(1 / 30, abs=1e-6)
    with StateStore.open(tmp_path / "state") as store:
        assert [e.at for e in store.usage_events()] == [ago(29)]

    shorter = write_manifest(tmp_path, "m", usage={"window_days": 7})
    with ModelAvailability(shorter, clock=FakeClock(NOW)) as client:
        assert client.status("m").usage_frequency == 0.0
    with StateStore.open(tmp_path / "state") as store:
        assert store.usage_events() == []


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from controller.api.client import ModelAvailability

    manifest, name, go, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    with ModelAvailability(manifest) as client:
        client.record_use(name)  # opens (and migrates) the store before the race
        (go.parent / f"{name}.ready").touch()
        while not go.exists():  # start together so that the writers really contend
            time.sleep(0.001)
        started = time.time()
        for i in range(count):
            client.record_use(name, generation_seconds=float(i))
        print(started, time.time())
    """
)


def test_two_processes_recording_uses_concurrently_lose_none(tmp_path: Path) -> None:
    count = 1000
    names = ("app", "cli")
    manifest = write_manifest(tmp_path, *names)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(manifest), name, str(go), str(count)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"{name}.ready").exists() for name in names):
        assert time.monotonic() < deadline, "writers did not start"
        for w in writers:
            if w.poll() is not None:
                pytest.fail(f"a writer exited early: {w.communicate()[1]}")
        time.sleep(0.005)
    go.touch()
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        spans.append(tuple(map(float, out.split())))
    # Both were writing at once: each started before the other had finished.
    assert max(start for start, _ in spans) < min(end for _, end in spans)

    with sqlite3.connect(tmp_path / "state" / DB_FILENAME) as conn:
        rows = conn.execute(
            "SELECT model, generation_seconds FROM usage_events "
            "WHERE generation_seconds IS NOT NULL ORDER BY id"
        ).fetchall()
    assert len(rows) == 2 * count
    for name in names:
        assert sorted(s for m, s in rows if m == name) == [float(i) for i in range(count)]


def test_aggregate_is_the_reference_for_stats() -> None:
    agg = UsageAggregate("m", 6, NOW, 2, 30.0, 1, 20.0)
    assert usage.stats(agg, window_days=30) == UsageStats(
        uses=6,
        uses_per_day=0.2,
        last_used=NOW,
        average_generation_seconds=15.0,
        performance_score=0.75,
    )

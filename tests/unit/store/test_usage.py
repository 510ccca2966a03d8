"""Usage in the state store: the rollup's sums match counting every event, and pruning keeps
them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.domain import usage
from controller.domain.usage import UsageEvent
from controller.store import StateStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.mark.parametrize("window", [30, 7, 1])
@pytest.mark.parametrize(
    "now",
    [
        NOW,
        datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc),  # at midnight: whole first day
        datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone.utc),
    ],
    ids=["noon", "midnight", "last-microsecond"],
)
def test_store_aggregates_like_the_pure_definition(
    tmp_path: Path, window: int, now: datetime
) -> None:
    """The rollup + first-day events the store reads give what counting every event gives,
    including uses right at and around the window's and the recent window's edges."""
    rng = random.Random(window)
    since, recent = usage.window_start(now, window), usage.recent_start(now, window)
    edges = [since, recent, since.replace(hour=0, minute=0, second=0, microsecond=0), now]
    moments = [
        edge + timedelta(microseconds=delta)
        for edge in edges
        for delta in (-1, 0, 1, -3_600_000_000, 3_600_000_000)
    ] + [now - timedelta(seconds=rng.randrange((window + 3) * 86400)) for _ in range(1500)]
    events = [
        UsageEvent(
            f"model-{rng.randrange(5)}", at, rng.choice([None, round(rng.uniform(0, 90), 3)])
        )
        for at in moments
    ]
    with StateStore.open(tmp_path) as store:
        for e in events:
            store.record_use(e.model, e.at, e.generation_seconds)
        from_sql = store.usage_aggregates(since=since, recent_since=recent)
    expected = usage.aggregate(events, since=since, recent_since=recent)
    assert set(from_sql) == set(expected)
    for name, agg in expected.items():
        got = from_sql[name]
        assert (got.uses, got.last_used, got.timed_uses, got.recent_timed_uses) == (
            agg.uses,
            agg.last_used,
            agg.timed_uses,
            agg.recent_timed_uses,
        )
        assert got.generation_total == pytest.approx(agg.generation_total)
        assert got.recent_generation_total == pytest.approx(agg.recent_generation_total)


def test_pruning_keeps_the_aggregates_of_the_window(tmp_path: Path) -> None:
    since, recent = usage.window_start(NOW, 30), usage.recent_start(NOW, 30)
    with StateStore.open(tmp_path) as store:
        for hours in range(0, 34 * 24, 5):
            store.record_use("m", NOW - timedelta(hours=hours), float(hours % 7))
        before = store.usage_aggregates(since=since, recent_since=recent)
        store.prune_usage(since)
        assert store.usage_aggregates(since=since, recent_since=recent) == before
        assert min(e.at for e in store.usage_events()) >= since


def test_usage_events_round_trip(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_use("a", ago(1), 2.5)
        store.record_use("b", ago(2))
        assert store.usage_events() == [UsageEvent("b", ago(2)), UsageEvent("a", ago(1), 2.5)]
        assert store.usage_events("a") == [UsageEvent("a", ago(1), 2.5)]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_impossible_generation_times_are_refused(tmp_path: Path, bad: float) -> None:
    with StateStore.open(tmp_path) as store, pytest.raises(ValueError, match="generation time"):
        store.record_use("m", NOW, bad)


def test_rows_older_than_the_window_are_pruned(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        for days in (31, 30.01, 29.99, 1):
            store.record_use("m", ago(days))
        assert store.prune_usage(usage.window_start(NOW, 30)) == 2
        assert [e.at for e in store.usage_events()] == [ago(29.99), ago(1)]
        assert store.prune_usage(usage.window_start(NOW, 30)) == 0


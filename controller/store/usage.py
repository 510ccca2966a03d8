"""Usage: every recorded use of a model, and a per-day rollup that keeps statistics cheap.

Every use is a row of ``usage_events`` (pruned after the usage window), and is added in the
same transaction to its model's row of ``usage_days``, a per-UTC-day rollup.  Statistics read
the rollup for whole days and the events only for the window's first (partial) day, so their
cost grows with models x days, not with traffic.  Recording a use is one short transaction,
safe from the application's process while the controller runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from controller.domain.usage import UsageAggregate, UsageEvent
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database


def _add_usage(sums: dict[str, list[Any]], row: list[Any]) -> None:
    """Fold one (model, uses, last_used, timed, spent, recent_timed, recent_spent) row in."""
    found = sums.get(row[0])
    if found is None:
        sums[row[0]] = row
        return
    for i in (1, 3, 4, 5, 6):
        found[i] += row[i]
    if row[2] is not None and (found[2] is None or row[2] > found[2]):
        found[2] = row[2]


def _day(value: datetime) -> str:
    """The UTC day of an instant, as usage_days keys it: 'YYYY-MM-DD'."""
    return timestamp(value)[:10]


def _next_day_start(value: datetime) -> datetime:
    day = value.astimezone(timezone.utc).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


class Usage(Database):
    """The ``usage_events`` and ``usage_days`` tables."""

    def record_use(self, model: str, at: datetime, generation_seconds: float | None = None) -> None:
        """Append one use of ``model``; one short transaction, safe from any process."""
        if generation_seconds is not None and not 0 <= generation_seconds < float("inf"):
            raise ValueError(
                f"generation time must be a finite number of seconds >= 0, "
                f"got {generation_seconds!r}"
            )
        used_at = timestamp(at)
        timed = 0 if generation_seconds is None else 1
        with self._write() as conn:
            conn.execute(
                "INSERT INTO usage_events (model, used_at, generation_seconds) VALUES (?, ?, ?)",
                (model, used_at, generation_seconds),
            )
            conn.execute(
                """
                INSERT INTO usage_days
                    (model, day, uses, timed_uses, generation_total, last_used)
                VALUES (?, ?, 1, ?, ?, ?)
                ON CONFLICT (model, day) DO UPDATE SET
                    uses = uses + 1,
                    timed_uses = timed_uses + excluded.timed_uses,
                    generation_total = generation_total + excluded.generation_total,
                    last_used = MAX(last_used, excluded.last_used)
                """,
                (model, used_at[:10], timed, generation_seconds or 0.0, used_at),
            )

    def usage_aggregates(
        self, *, since: datetime, recent_since: datetime
    ) -> dict[str, UsageAggregate]:
        """Per-model sums of the uses at or after ``since`` (``controller.domain.usage.aggregate``
        over every event gives the same).

        Whole days after ``since``'s day come from the daily rollup; the rest of that first
        day, and of ``recent_since``'s day for the recent timings, from the events.
        """
        if recent_since < since:
            raise ValueError("the recent window must lie within the usage window")
        since_day, recent_day = _day(since), _day(recent_since)
        sums: dict[str, list[Any]] = {}
        # Whole days after the window's first day, from the rollup.
        for row in self._select(
            """
            SELECT model, SUM(uses), MAX(last_used), SUM(timed_uses), TOTAL(generation_total),
                   SUM(CASE WHEN day > ?2 THEN timed_uses ELSE 0 END),
                   TOTAL(CASE WHEN day > ?2 THEN generation_total END)
            FROM usage_days WHERE day > ?1 GROUP BY model
            """,
            (since_day, recent_day),
        ):
            sums[row[0]] = list(row)
        # The rest of the window's first day, from the events.
        for row in self._select(
            """
            SELECT model, COUNT(*), MAX(used_at), COUNT(generation_seconds),
                   TOTAL(generation_seconds),
                   COUNT(CASE WHEN used_at >= ?2 THEN generation_seconds END),
                   TOTAL(CASE WHEN used_at >= ?2 THEN generation_seconds END)
            FROM usage_events WHERE used_at >= ?1 AND used_at < ?3 GROUP BY model
            """,
            (timestamp(since), timestamp(recent_since), timestamp(_next_day_start(since))),
        ):
            _add_usage(sums, list(row))
        # The recent window's first day, when it is not the window's: the rollup counted
        # its uses, but only the events tell which of its timings are recent.
        if recent_day != since_day:
            for row in self._select(
                """
                SELECT model, 0, NULL, 0, 0, COUNT(generation_seconds), TOTAL(generation_seconds)
                FROM usage_events WHERE used_at >= ?1 AND used_at < ?2 GROUP BY model
                """,
                (timestamp(recent_since), timestamp(_next_day_start(recent_since))),
            ):
                _add_usage(sums, list(row))
        return {
            model: UsageAggregate(
                model=model,
                uses=uses,
                last_used=parse_timestamp(last),
                timed_uses=timed,
                generation_total=spent,
                recent_timed_uses=recent_timed,
                recent_generation_total=recent_spent,
            )
            for model, (_, uses, last, timed, spent, recent_timed, recent_spent) in sorted(
                sums.items()
            )
            if uses
        }

    def usage_events(self, model: str | None = None) -> list[UsageEvent]:
        """Every recorded use, oldest first (optionally of one model)."""
        where, params = ("WHERE model = ?", (model,)) if model is not None else ("", ())
        rows = self._select(
            f"SELECT model, used_at, generation_seconds FROM usage_events {where} "
            "ORDER BY used_at, id",
            params,
        )
        return [
            UsageEvent(row["model"], parse_timestamp(row["used_at"]), row["generation_seconds"])
            for row in rows
        ]

    def prune_usage(self, before: datetime) -> int:
        """Delete uses older than ``before``; returns how many went.

        The rollup keeps ``before``'s own day: its events after ``before`` still count, and
        statistics never read the rollup of a window's first day anyway.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM usage_events WHERE used_at < ?", (timestamp(before),)
            )
            conn.execute("DELETE FROM usage_days WHERE day < ?", (_day(before),))
            return cursor.rowcount

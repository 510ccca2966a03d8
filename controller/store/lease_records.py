"""The recorded leases: who said, and when last, that they use a model right now.

Rows only; whether a recorded lease is still live depends on the clock and on processes, and
:mod:`controller.store.leases` decides it.  A lease and an eviction of the same model exclude
each other: :meth:`LeaseRecords.add_lease` checks the deletion journal, and
:meth:`controller.store.deletions.Deletions.begin_deletion` checks the leases, each in the
transaction that writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime

from controller.domain import Lease
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database
from controller.store.errors import BeingEvictedError


def lease_from_row(row: sqlite3.Row) -> Lease:
    return Lease(
        id=row["id"],
        model=row["model"],
        holder=row["holder"],
        pid=row["pid"],
        host=row["host"],
        acquired_at=parse_timestamp(row["acquired_at"]),
        heartbeat_at=parse_timestamp(row["heartbeat_at"]),
        ttl_seconds=row["ttl_seconds"],
    )


class LeaseRecords(Database):
    """The ``leases`` table."""

    def add_lease(self, lease: Lease) -> None:
        """Record a lease; raises :class:`BeingEvictedError` while retention evicts the model.

        One transaction with :meth:`begin_deletion`'s check, so a lease and an eviction of
        the same model can never both start: whichever commits first wins.
        """
        with self._write() as conn:
            evicting = conn.execute(
                "SELECT 1 FROM deletions WHERE finished_at IS NULL AND model = ? AND evicts = 1",
                (lease.model,),
            ).fetchone()
            if evicting:
                raise BeingEvictedError(lease.model)
            conn.execute(
                """
                INSERT INTO leases
                    (id, model, holder, pid, host, acquired_at, heartbeat_at, ttl_seconds)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    lease.id,
                    lease.model,
                    lease.holder,
                    lease.pid,
                    lease.host,
                    timestamp(lease.acquired_at),
                    timestamp(lease.heartbeat_at),
                    lease.ttl_seconds,
                ),
            )

    def renew_lease(self, lease_id: str, at: datetime, ttl_seconds: float | None = None) -> bool:
        """The heartbeat; False when the lease is gone (released, or pruned as void)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE leases SET heartbeat_at = ?, ttl_seconds = COALESCE(?, ttl_seconds) "
                "WHERE id = ?",
                (timestamp(at), ttl_seconds, lease_id),
            )
            return cursor.rowcount == 1

    def release_lease(self, lease_id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
            return cursor.rowcount == 1

    def leases(self, model: str | None = None) -> list[Lease]:
        """Every recorded lease, void ones too: whether one is live is the caller's call
        (:func:`controller.store.leases.is_live`), since it depends on the clock and on
        processes."""
        where, params = ("WHERE model = ?", (model,)) if model is not None else ("", ())
        rows = self._select(f"SELECT * FROM leases {where} ORDER BY model, acquired_at", params)
        return [lease_from_row(row) for row in rows]

    def prune_leases(self, is_live: Callable[[Lease], bool]) -> int:
        """Drop the void leases (their holders died without releasing them)."""
        void = [lease.id for lease in self.leases() if not is_live(lease)]
        if not void:
            return 0
        with self._write() as conn:
            conn.executemany("DELETE FROM leases WHERE id = ?", [(i,) for i in void])
        return len(void)

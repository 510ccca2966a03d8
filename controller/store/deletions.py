"""The deletion journal, and the on-demand models retention evicted.

``deletions`` is written before a deletion touches the cache and closed after it; an open
row is a deletion that was killed halfway, for the next apply to finish.  ``evicted`` holds
the on-demand models retention deleted: they are not fetched again (nor verified or
repaired) until someone requests them, which removes the row
(:meth:`controller.store.requests.Requests.add_request`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from controller.domain import DeletionRecord, Eviction, FileWork, Lease, Reason
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database
from controller.store.errors import InUseError
from controller.store.lease_records import lease_from_row

# Reasons whose deletion takes a declared model's own files away (rather than files it no
# longer needs): the model is then evicted, and a lease cannot start while that happens.
EVICTION_REASONS = frozenset({Reason.UNUSED, Reason.OVER_BUDGET})


def _work_to_json(files: Sequence[FileWork]) -> str:
    return json.dumps(
        [{"path": f.path, "size": f.size, "etag": f.etag} for f in files], separators=(",", ":")
    )


def _work_from_json(text: str) -> tuple[FileWork, ...]:
    return tuple(FileWork(d["path"], d["size"], d["etag"]) for d in json.loads(text))


def _deletion_from_row(row: sqlite3.Row) -> DeletionRecord:
    return DeletionRecord(
        id=row["id"],
        model=row["model"],
        repo=row["repo"],
        commit=row["commit_sha"],
        reason=Reason(row["reason"]),
        message=row["message"],
        files=_work_from_json(row["files_json"]),
        started_at=parse_timestamp(row["started_at"]),
        finished_at=None if row["finished_at"] is None else parse_timestamp(row["finished_at"]),
    )


class Deletions(Database):
    """The ``deletions`` and ``evicted`` tables."""

    def begin_deletion(
        self,
        *,
        model: str,
        repo: str,
        commit: str,
        reason: Reason,
        message: str,
        files: Sequence[FileWork],
        at: datetime,
        is_live: Callable[[Lease], bool],
    ) -> int:
        """Journal a deletion before it touches the cache; returns its id.

        Raises :class:`InUseError` when a live lease holds ``model``: the check and the journal
        entry are one transaction, and :meth:`add_lease` checks the journal in one too.  An
        open entry for the same revision (a deletion killed halfway) is closed: this one
        finishes it, and stays an eviction if that one was.
        """
        with self._write() as conn:
            rows = conn.execute("SELECT * FROM leases WHERE model = ?", (model,)).fetchall()
            live = [lease for lease in map(lease_from_row, rows) if is_live(lease)]
            if live:
                raise InUseError(model, live)
            stamp = timestamp(at)
            earlier = conn.execute(
                "SELECT COALESCE(MAX(evicts), 0) FROM deletions "
                "WHERE finished_at IS NULL AND model = ? AND repo = ? AND commit_sha = ?",
                (model, repo, commit),
            ).fetchone()[0]
            conn.execute(
                "UPDATE deletions SET finished_at = ? "
                "WHERE finished_at IS NULL AND model = ? AND repo = ? AND commit_sha = ?",
                (stamp, model, repo, commit),
            )
            evicts = int(reason in EVICTION_REASONS or bool(earlier))
            cursor = conn.execute(
                """
                INSERT INTO deletions (model, repo, commit_sha, reason, message, files_json,
                                       evicts, started_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (model, repo, commit, reason.value, message, _work_to_json(files), evicts, stamp),
            )
            if reason in EVICTION_REASONS:
                # Before the first file goes: an eviction killed halfway must not look like
                # a half-downloaded model that the next apply should finish.
                conn.execute(
                    """
                    INSERT INTO evicted (model, reason, message, evicted_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (model) DO UPDATE SET reason = excluded.reason,
                        message = excluded.message, evicted_at = excluded.evicted_at
                    """,
                    (model, reason.value, message, stamp),
                )
            row_id = cursor.lastrowid
        assert row_id is not None
        return row_id

    def finish_deletion(
        self, deletion_id: int, at: datetime, *, repo: str, commit: str, paths: Iterable[str]
    ) -> None:
        """Close the journal entry, and forget the ownership of the entries that went."""
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM owned_files WHERE repo = ? AND commit_sha = ? AND path = ?",
                [(repo, commit, path) for path in paths],
            )
            conn.execute(
                "UPDATE deletions SET finished_at = ? WHERE id = ?", (timestamp(at), deletion_id)
            )

    def pending_deletions(self) -> list[DeletionRecord]:
        rows = self._select("SELECT * FROM deletions WHERE finished_at IS NULL ORDER BY id")
        return [_deletion_from_row(row) for row in rows]

    def deletion_history(self, limit: int = 100) -> list[DeletionRecord]:
        """The most recent deletions, newest first."""
        rows = self._select("SELECT * FROM deletions ORDER BY id DESC LIMIT ?", (limit,))
        return [_deletion_from_row(row) for row in rows]

    def evictions(self) -> dict[str, Eviction]:
        rows = self._select("SELECT * FROM evicted ORDER BY model")
        return {
            row["model"]: Eviction(
                model=row["model"],
                reason=Reason(row["reason"]),
                message=row["message"],
                at=parse_timestamp(row["evicted_at"]),
            )
            for row in rows
        }

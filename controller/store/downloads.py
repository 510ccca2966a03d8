"""Download history and ownership: every attempt at a file, and the files modelsync may delete.

``downloads`` keeps one row per attempt (the source of throughput estimates and of each
model's history).  ``owned_files`` names the snapshot entries modelsync put in the cache or
adopted: retention deletes those and nothing else.  A successful download is owned in the
same transaction that records it; the deletion journal forgets ownership when a file goes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from controller.domain import OwnedFile
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database


class DownloadOutcome(str, Enum):
    OK = "ok"
    FAILED = "failed"
    CORRUPT = "corrupt"  # transferred completely, but the checksum did not match


@dataclass(frozen=True)
class DownloadRecord:
    """One download attempt of one file."""

    id: int
    model: str
    repo: str
    revision: str
    commit: str
    path: str
    bytes: int  # bytes transferred by this attempt (a resumed download counts the rest only)
    started_at: datetime
    finished_at: datetime
    seconds: float
    outcome: DownloadOutcome
    message: str


def _download_from_row(row: sqlite3.Row) -> DownloadRecord:
    return DownloadRecord(
        id=row["id"],
        model=row["model"],
        repo=row["repo"],
        revision=row["revision"],
        commit=row["commit_sha"],
        path=row["path"],
        bytes=row["bytes"],
        started_at=parse_timestamp(row["started_at"]),
        finished_at=parse_timestamp(row["finished_at"]),
        seconds=row["seconds"],
        outcome=DownloadOutcome(row["outcome"]),
        message=row["message"],
    )


class Downloads(Database):
    """The ``downloads`` and ``owned_files`` tables."""

    def record_download(
        self,
        *,
        model: str,
        repo: str,
        revision: str,
        commit: str,
        path: str,
        bytes: int,
        started_at: datetime,
        finished_at: datetime,
        outcome: DownloadOutcome,
        message: str = "",
        seconds: float | None = None,
    ) -> int:
        """Append one download attempt; returns its id.

        ``seconds`` defaults to ``finished_at - started_at``; a caller that timed the
        transfer with a monotonic clock should pass that, since wall clocks can jump.
        """
        duration = (finished_at - started_at).total_seconds() if seconds is None else seconds
        if duration < 0:
            raise ValueError(f"a download cannot take {duration} seconds")
        with self._write() as conn:
            cursor = conn.execute(
                """
                INSERT INTO downloads (model, repo, revision, commit_sha, path, bytes,
                                       started_at, finished_at, seconds, outcome, message)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    model,
                    repo,
                    revision,
                    commit,
                    path,
                    bytes,
                    timestamp(started_at),
                    timestamp(finished_at),
                    duration,
                    DownloadOutcome(outcome).value,
                    message,
                ),
            )
            row_id = cursor.lastrowid
            if DownloadOutcome(outcome) is DownloadOutcome.OK:
                # In the same transaction: a file modelsync put in the cache is always one it
                # knows it owns, so retention can never leave it behind as someone else's.
                conn.execute(
                    """
                    INSERT INTO owned_files (repo, commit_sha, path, model, origin, since)
                    VALUES (?, ?, ?, ?, 'downloaded', ?)
                    ON CONFLICT (repo, commit_sha, path) DO NOTHING
                    """,
                    (repo, commit, path, model, timestamp(finished_at)),
                )
        assert row_id is not None  # an INSERT into a rowid table always sets it
        return row_id

    def download_history(self, model: str | None = None, limit: int = 100) -> list[DownloadRecord]:
        """The most recent attempts, newest first, optionally of one model only."""
        if model is None:
            rows = self._select(
                "SELECT * FROM downloads ORDER BY finished_at DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._select(
                "SELECT * FROM downloads WHERE model = ? "
                "ORDER BY finished_at DESC, id DESC LIMIT ?",
                (model, limit),
            )
        return [_download_from_row(row) for row in rows]

    def throughput(self, window: int = 20) -> float | None:
        """Bytes per second over the last ``window`` successful downloads, or ``None``.

        Total bytes over total time rather than a mean of rates, so a few tiny files with
        large fixed overheads do not drown out the big transfers a wait estimate is about.
        """
        rows = self._select(
            """
            SELECT COALESCE(SUM(bytes), 0) AS total_bytes,
                   COALESCE(SUM(seconds), 0) AS total_seconds
            FROM (SELECT bytes, seconds FROM downloads
                  WHERE outcome = 'ok' AND bytes > 0 AND seconds > 0
                  ORDER BY finished_at DESC, id DESC LIMIT ?)
            """,
            (window,),
        )
        if not rows or rows[0]["total_seconds"] <= 0:
            return None
        return float(rows[0]["total_bytes"]) / float(rows[0]["total_seconds"])

    # ----------------------------------------------------------------- ownership

    def adopt(
        self, model: str, repo: str, commit: str, paths: Iterable[str], at: datetime
    ) -> int:
        """Take ownership of snapshot entries another tool put in the cache; returns how
        many were not owned yet (an entry modelsync downloaded keeps its record)."""
        rows = [(repo, commit, path, model, timestamp(at)) for path in paths]
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(
                """
                INSERT INTO owned_files (repo, commit_sha, path, model, origin, since)
                VALUES (?, ?, ?, ?, 'adopted', ?)
                ON CONFLICT (repo, commit_sha, path) DO NOTHING
                """,
                rows,
            )
            return conn.total_changes - before

    def owned(self) -> list[OwnedFile]:
        """Every owned entry: a pass reads one per file modelsync put in the cache, so the rows
        come as tuples, and what repeats from row to row (the repo, commit and model a
        download's files share, and the instant they were recorded) is kept once."""
        rows = self._select_tuples(
            "SELECT repo, commit_sha, path, model, origin, since "
            "FROM owned_files ORDER BY repo, commit_sha, path"
        )
        names: dict[str, str] = {}
        instants: dict[str, datetime] = {}
        owned = []
        for repo, commit, path, model, origin, since in rows:
            at = instants.get(since)
            if at is None:
                at = instants[since] = parse_timestamp(since)
            owned.append(
                OwnedFile(
                    repo=names.setdefault(repo, repo),
                    commit=names.setdefault(commit, commit),
                    path=path,
                    model=names.setdefault(model, model),
                    adopted=origin == "adopted",
                    since=at,
                )
            )
        return owned

"""The SQLite state store: everything modelsync remembers that is not a file in the cache.

One database, ``<state_dir>/modelsync.db``, shared by every process on the machine: the
application recording usage, the CLI, the controller.  WAL journal mode lets readers run
alongside the single writer, and a busy timeout makes a writer wait for another instead of
failing; each write is one short ``BEGIN IMMEDIATE`` transaction, so nobody waits long.

The schema evolves by appending to :data:`MIGRATIONS`.  ``PRAGMA user_version`` records how
many have been applied; opening the store applies the missing ones in a single transaction,
and refuses a database written by a newer modelsync rather than misreading it.

Callers pass every timestamp in; the store never reads the clock, which keeps it
deterministic under test and leaves "now" to whoever owns the loop.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from controller.domain import (
    DeletionRecord,
    Eviction,
    FileWork,
    HealthCheck,
    Lease,
    OwnedFile,
    Reason,
    RemoteFile,
    RemoteRevision,
    Verification,
)
from controller.domain.usage import UsageAggregate, UsageEvent

DB_FILENAME = "modelsync.db"

# How long a writer waits for another process's transaction before giving up.  Writes are
# tiny, so hitting this means something is stuck, not merely busy.
BUSY_TIMEOUT_SECONDS = 10.0

# Each entry is one schema version: the statements that bring version N-1 to version N.
# Append only; never edit a migration that has shipped.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE verifications (
            repo TEXT NOT NULL,
            blob TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            digest TEXT NOT NULL,
            ok INTEGER NOT NULL CHECK (ok IN (0, 1)),
            checked_at TEXT NOT NULL,
            PRIMARY KEY (repo, blob)
        )
        """,
        """
        CREATE TABLE downloads (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            repo TEXT NOT NULL,
            revision TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            path TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            seconds REAL NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'corrupt')),
            message TEXT NOT NULL DEFAULT ''
        )
        """,
        "CREATE INDEX downloads_by_model ON downloads (model, finished_at)",
        "CREATE INDEX downloads_by_outcome ON downloads (outcome, finished_at)",
        """
        CREATE TABLE remote_revisions (
            repo TEXT NOT NULL,
            revision TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            files_json TEXT NOT NULL,
            observed_at TEXT NOT NULL,
            PRIMARY KEY (repo, revision)
        )
        """,
    ),
    (
        # Usage: every use is a row of usage_events (pruned after the usage window), and is
        # added in the same transaction to its model's row of usage_days, a per-UTC-day
        # rollup.  Statistics read the rollup for whole days and the events only for the
        # window's first (partial) day, so their cost grows with models x days, not with
        # traffic.
        """
        CREATE TABLE usage_events (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            used_at TEXT NOT NULL,
            generation_seconds REAL
                CHECK (generation_seconds IS NULL OR generation_seconds >= 0)
        )
        """,
        # Covering, so that pruning and reading a window's first day never touch the table.
        "CREATE INDEX usage_by_time ON usage_events (used_at, model, generation_seconds)",
        """
        CREATE TABLE usage_days (
            model TEXT NOT NULL,
            day TEXT NOT NULL,
            uses INTEGER NOT NULL,
            timed_uses INTEGER NOT NULL,
            generation_total REAL NOT NULL,
            last_used TEXT NOT NULL,
            PRIMARY KEY (model, day)
        ) WITHOUT ROWID
        """,
        # Requests for on-demand models, pending until a reconcile has them on disk.
        """
        CREATE TABLE requests (
            model TEXT PRIMARY KEY,
            requested_at TEXT NOT NULL
        )
        """,
    ),
    (
        # Models paused through the API (the manifest's `suspend` is the other way): kept
        # here so that a pause survives restarts and every plan sees it.
        """
        CREATE TABLE pauses (
            model TEXT PRIMARY KEY,
            paused_at TEXT NOT NULL
        )
        """,
    ),
    (
        # Retention.  owned_files: the snapshot entries modelsync made or adopted, the only
        # ones it may ever delete.  Filled on every successful download; the INSERT below
        # gives a database from before this migration the entries its history shows.
        """
        CREATE TABLE owned_files (
            repo TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            path TEXT NOT NULL,
            model TEXT NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('downloaded', 'adopted')),
            since TEXT NOT NULL,
            PRIMARY KEY (repo, commit_sha, path)
        ) WITHOUT ROWID
        """,
        """
        INSERT OR IGNORE INTO owned_files (repo, commit_sha, path, model, origin, since)
        SELECT repo, commit_sha, path, MIN(model), 'downloaded', MIN(finished_at)
        FROM downloads WHERE outcome = 'ok' GROUP BY repo, commit_sha, path
        """,
        # leases: who uses a model right now.  A lease is void once its heartbeat is older
        # than its ttl, or once its process (pid on host) is gone.
        """
        CREATE TABLE leases (
            id TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            holder TEXT NOT NULL,
            pid INTEGER,
            host TEXT NOT NULL,
            acquired_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            ttl_seconds REAL NOT NULL CHECK (ttl_seconds > 0)
        )
        """,
        "CREATE INDEX leases_by_model ON leases (model)",
        # deletions: a journal written before a deletion touches the cache and closed after
        # it; an open row is a deletion that was killed halfway, for the next apply to finish.
        """
        CREATE TABLE deletions (
            id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            repo TEXT NOT NULL,
            commit_sha TEXT NOT NULL,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            files_json TEXT NOT NULL,
            evicts INTEGER NOT NULL CHECK (evicts IN (0, 1)),
            started_at TEXT NOT NULL,
            finished_at TEXT
        )
        """,
        "CREATE INDEX deletions_open ON deletions (finished_at, model)",
        # evicted: on-demand models retention deleted.  They are not fetched again (nor
        # verified or repaired) until someone requests them, which removes the row.
        """
        CREATE TABLE evicted (
            model TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            message TEXT NOT NULL,
            evicted_at TEXT NOT NULL
        )
        """,
    ),
    (
        # health_checks: the latest health check of each model (files and, when the
        # manifest declares one, the probe), so status can show it after any later apply.
        """
        CREATE TABLE health_checks (
            model TEXT PRIMARY KEY,
            commit_sha TEXT NOT NULL,
            checked_at TEXT NOT NULL,
            files_ok INTEGER NOT NULL,
            probe_ok INTEGER,
            probe_exit INTEGER,
            probe_message TEXT NOT NULL DEFAULT ''
        )
        """,
    ),
)


class StateError(Exception):
    """The state database cannot be used as asked."""


class SchemaTooNewError(StateError):
    """The database was written by a newer modelsync than this one."""


class InUseError(StateError):
    """A deletion was refused: a live lease holds the model."""

    def __init__(self, model: str, leases: Sequence[Lease]) -> None:
        holders = ", ".join(sorted({lease.holder for lease in leases}))
        super().__init__(f"{model} is in use ({holders}); its deletion waits for the lease")
        self.model = model
        self.leases = tuple(leases)


class BeingEvictedError(StateError):
    """A lease was refused: retention is deleting the model right now."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"{model} is being evicted by retention; request it again once the deletion is done"
        )
        self.model = model


# Reasons whose deletion takes a declared model's own files away (rather than files it no
# longer needs): the model is then evicted, and a lease cannot start while that happens.
EVICTION_REASONS = frozenset({Reason.UNUSED, Reason.OVER_BUDGET})


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


# --------------------------------------------------------------------------- conversions


def _timestamp(value: datetime) -> str:
    """ISO-8601 UTC with fixed-width microseconds, so text order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no time zone; pass an aware datetime")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


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
    return _timestamp(value)[:10]


def _next_day_start(value: datetime) -> datetime:
    day = value.astimezone(timezone.utc).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


_INT64_LIMIT = 1 << 63


def _inode_to_sql(inode: int) -> int:
    # SQLite integers are signed 64-bit, but some file systems (NFS, FUSE, overlay) hand out
    # inode numbers above 2**63; store those as their two's-complement twin.
    return inode - (1 << 64) if inode >= _INT64_LIMIT else inode


def _inode_from_sql(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _files_to_json(files: Sequence[RemoteFile]) -> str:
    return json.dumps(
        [{"path": f.path, "size": f.size, "blob_id": f.blob_id, "sha256": f.sha256} for f in files],
        separators=(",", ":"),
    )


def _files_from_json(text: str) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(path=d["path"], size=d["size"], blob_id=d["blob_id"], sha256=d["sha256"])
        for d in json.loads(text)
    )


def _work_to_json(files: Sequence[FileWork]) -> str:
    return json.dumps(
        [{"path": f.path, "size": f.size, "etag": f.etag} for f in files], separators=(",", ":")
    )


def _work_from_json(text: str) -> tuple[FileWork, ...]:
    return tuple(FileWork(d["path"], d["size"], d["etag"]) for d in json.loads(text))


def _lease_from_row(row: sqlite3.Row) -> Lease:
    return Lease(
        id=row["id"],
        model=row["model"],
        holder=row["holder"],
        pid=row["pid"],
        host=row["host"],
        acquired_at=_parse_timestamp(row["acquired_at"]),
        heartbeat_at=_parse_timestamp(row["heartbeat_at"]),
        ttl_seconds=row["ttl_seconds"],
    )


def _deletion_from_row(row: sqlite3.Row) -> DeletionRecord:
    return DeletionRecord(
        id=row["id"],
        model=row["model"],
        repo=row["repo"],
        commit=row["commit_sha"],
        reason=Reason(row["reason"]),
        message=row["message"],
        files=_work_from_json(row["files_json"]),
        started_at=_parse_timestamp(row["started_at"]),
        finished_at=None if row["finished_at"] is None else _parse_timestamp(row["finished_at"]),
    )


def _verification_from_row(row: sqlite3.Row) -> Verification:
    return Verification(
        blob=row["blob"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        inode=_inode_from_sql(row["inode"]),
        digest=row["digest"],
        ok=bool(row["ok"]),
        checked_at=_parse_timestamp(row["checked_at"]),
    )


def _download_from_row(row: sqlite3.Row) -> DownloadRecord:
    return DownloadRecord(
        id=row["id"],
        model=row["model"],
        repo=row["repo"],
        revision=row["revision"],
        commit=row["commit_sha"],
        path=row["path"],
        bytes=row["bytes"],
        started_at=_parse_timestamp(row["started_at"]),
        finished_at=_parse_timestamp(row["finished_at"]),
        seconds=row["seconds"],
        outcome=DownloadOutcome(row["outcome"]),
        message=row["message"],
    )


# --------------------------------------------------------------------------- connection


def _too_new(path: Path, found: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"state database {path} has schema version {found}, but this modelsync only "
        f"knows versions up to {len(MIGRATIONS)}; upgrade modelsync, or point the manifest's "
        "`state` at another directory"
    )


def _user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to date in one transaction; return the resulting version.

    IMMEDIATE takes the write lock before reading the version, so two processes opening a
    fresh database at once cannot both apply the same migration.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = _user_version(conn)
        if current > len(MIGRATIONS):
            raise _too_new(path, current)
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        # PRAGMA cannot take parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return len(MIGRATIONS)


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite already rolls back by itself on some errors (disk full, I/O); a second
    # ROLLBACK would then fail and hide the error that matters.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _connect(target: str, *, uri: bool) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module must not open transactions behind our back;
    # writes use explicit BEGIN IMMEDIATE so the busy timeout governs lock waits.
    conn = sqlite3.connect(
        target,
        uri=uri,
        timeout=BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.row_factory = sqlite3.Row
    return conn


# --------------------------------------------------------------------------- store


class StateStore:
    """Verification records, download history, last-known remote revisions, usage and
    requests.

    Thread safety: one connection per store, guarded by a lock, rather than one connection
    per thread.  Every operation is a single short statement or transaction, so threads of
    one process gain nothing from parallel connections (SQLite admits one writer at a time
    anyway), while a single connection can be closed from any thread and never leaks
    connections of threads that have finished.  Other processes still run concurrently
    through WAL.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, version: int, readonly: bool) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self.path = path
        self.schema_version = version
        self.readonly = readonly

    # ----------------------------------------------------------------- opening and closing

    @classmethod
    def open(cls, state_dir: str | os.PathLike[str]) -> StateStore:
        """Open (creating the directory and database if needed) and migrate the store."""
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DB_FILENAME
        conn = _connect(str(path), uri=False)
        try:
            # WAL persists in the file; setting it again is a no-op.  It must precede the
            # migration transaction because the journal mode cannot change inside one.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL except on power loss
            conn.execute("PRAGMA foreign_keys = ON")
            version = _migrate(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, version, readonly=False)

    @classmethod
    def open_readonly(cls, state_dir: str | os.PathLike[str]) -> StateStore | None:
        """Open for reading only, or ``None`` when there is no database yet.

        Planning uses this and must change nothing: no directory, no database, no
        migration.  (SQLite may still create its ``-wal``/``-shm`` side files next to an
        existing database in order to read it consistently; they hold no data of ours.)
        """
        path = Path(state_dir) / DB_FILENAME
        if not path.is_file():
            return None
        conn = _connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            version = _user_version(conn)
            if version > len(MIGRATIONS):
                raise _too_new(path, version)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, version, readonly=True)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- plumbing

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state store {self.path} is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, holding the thread lock for its whole length."""
        if self.readonly:
            raise StateError(f"state store {self.path} was opened read-only")
        with self._lock:
            conn = self._live()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.OperationalError as e:
                # A read-only store cannot migrate an older database; a table a later
                # migration adds is simply empty from the reader's point of view.
                if self.schema_version < len(MIGRATIONS) and "no such table" in str(e):
                    return []
                raise

    # ----------------------------------------------------------------- verifications

    def record_verification(self, repo: str, v: Verification) -> None:
        """Remember the latest check of a blob, replacing any earlier one."""
        with self._write() as conn:
            conn.execute(
                """
                INSERT INTO verifications
                    (repo, blob, size, mtime_ns, inode, digest, ok, checked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (repo, blob) DO UPDATE SET
                    size = excluded.size, mtime_ns = excluded.mtime_ns,
                    inode = excluded.inode, digest = excluded.digest,
                    ok = excluded.ok, checked_at = excluded.checked_at
                """,
                (
                    repo,
                    v.blob,
                    v.size,
                    v.mtime_ns,
                    _inode_to_sql(v.inode),
                    v.digest,
                    int(v.ok),
                    _timestamp(v.checked_at),
                ),
            )

    def verifications(self) -> dict[tuple[str, str], Verification]:
        rows = self._select("SELECT * FROM verifications ORDER BY repo, blob")
        return {(row["repo"], row["blob"]): _verification_from_row(row) for row in rows}

    def verifications_for(self, repo: str) -> dict[str, Verification]:
        rows = self._select("SELECT * FROM verifications WHERE repo = ? ORDER BY blob", (repo,))
        return {row["blob"]: _verification_from_row(row) for row in rows}

    def verification(self, repo: str, blob: str) -> Verification | None:
        rows = self._select(
            "SELECT * FROM verifications WHERE repo = ? AND blob = ?", (repo, blob)
        )
        return _verification_from_row(rows[0]) if rows else None

    def forget_verification(self, repo: str, blob: str) -> None:
        """Drop a blob's record, e.g. after the blob was deleted or replaced."""
        with self._write() as conn:
            conn.execute("DELETE FROM verifications WHERE repo = ? AND blob = ?", (repo, blob))

    # ----------------------------------------------------------------- downloads

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
                    _timestamp(started_at),
                    _timestamp(finished_at),
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
                    (repo, commit, path, model, _timestamp(finished_at)),
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

    # ----------------------------------------------------------------- remote revisions

    def remember_remote(self, rev: RemoteRevision, observed_at: datetime) -> None:
        """Keep what the hub said a revision contains, for when it cannot be asked."""
        if rev.stale:
            # Re-remembering a recalled revision would pass old news off as fresh.
            raise ValueError(f"{rev.repo}@{rev.revision} is stale; only remember hub answers")
        with self._write() as conn:
            conn.execute(
                """
                INSERT INTO remote_revisions (repo, revision, commit_sha, files_json, observed_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (repo, revision) DO UPDATE SET
                    commit_sha = excluded.commit_sha, files_json = excluded.files_json,
                    observed_at = excluded.observed_at
                """,
                (
                    rev.repo,
                    rev.revision,
                    rev.commit,
                    _files_to_json(rev.files),
                    _timestamp(observed_at),
                ),
            )

    def recall_remote(self, repo: str, revision: str) -> RemoteRevision | None:
        """The last remembered answer for ``repo@revision``, marked stale, if any."""
        rows = self._select(
            "SELECT * FROM remote_revisions WHERE repo = ? AND revision = ?", (repo, revision)
        )
        if not rows:
            return None
        row = rows[0]
        return RemoteRevision(
            repo=row["repo"],
            revision=row["revision"],
            commit=row["commit_sha"],
            files=_files_from_json(row["files_json"]),
            stale=True,
        )

    # ----------------------------------------------------------------- usage

    def record_use(self, model: str, at: datetime, generation_seconds: float | None = None) -> None:
        """Append one use of ``model``; one short transaction, safe from any process."""
        if generation_seconds is not None and not 0 <= generation_seconds < float("inf"):
            raise ValueError(
                f"generation time must be a finite number of seconds >= 0, "
                f"got {generation_seconds!r}"
            )
        used_at = _timestamp(at)
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
            (_timestamp(since), _timestamp(recent_since), _timestamp(_next_day_start(since))),
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
                (_timestamp(recent_since), _timestamp(_next_day_start(recent_since))),
            ):
                _add_usage(sums, list(row))
        return {
            model: UsageAggregate(
                model=model,
                uses=uses,
                last_used=_parse_timestamp(last),
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
            UsageEvent(row["model"], _parse_timestamp(row["used_at"]), row["generation_seconds"])
            for row in rows
        ]

    def prune_usage(self, before: datetime) -> int:
        """Delete uses older than ``before``; returns how many went.

        The rollup keeps ``before``'s own day: its events after ``before`` still count, and
        statistics never read the rollup of a window's first day anyway.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM usage_events WHERE used_at < ?", (_timestamp(before),)
            )
            conn.execute("DELETE FROM usage_days WHERE day < ?", (_day(before),))
            return cursor.rowcount

    # ----------------------------------------------------------------- requests

    def add_request(self, model: str, at: datetime) -> bool:
        """Queue a request for ``model``; False when one was already pending (kept as is).

        A request is what brings an evicted model back, so it ends the eviction.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO requests (model, requested_at) VALUES (?, ?) "
                "ON CONFLICT (model) DO NOTHING",
                (model, _timestamp(at)),
            )
            conn.execute("DELETE FROM evicted WHERE model = ?", (model,))
            return cursor.rowcount == 1

    def requests(self) -> dict[str, datetime]:
        """Pending requests: model name -> when it was first requested."""
        rows = self._select("SELECT model, requested_at FROM requests ORDER BY model")
        return {row["model"]: _parse_timestamp(row["requested_at"]) for row in rows}

    def clear_request(self, model: str) -> bool:
        """Mark a request fulfilled; False when there was none."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM requests WHERE model = ?", (model,))
            return cursor.rowcount == 1

    # ----------------------------------------------------------------- pauses

    def pause(self, model: str, at: datetime) -> bool:
        """Pause ``model``'s work; False when it was already paused (kept as is)."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO pauses (model, paused_at) VALUES (?, ?) "
                "ON CONFLICT (model) DO NOTHING",
                (model, _timestamp(at)),
            )
            return cursor.rowcount == 1

    def resume(self, model: str) -> bool:
        """Lift a pause; False when the model was not paused."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM pauses WHERE model = ?", (model,))
            return cursor.rowcount == 1

    def paused(self) -> dict[str, datetime]:
        """Paused models: name -> when the pause began."""
        rows = self._select("SELECT model, paused_at FROM pauses ORDER BY model")
        return {row["model"]: _parse_timestamp(row["paused_at"]) for row in rows}

    # ----------------------------------------------------------------- ownership

    def adopt(
        self, model: str, repo: str, commit: str, paths: Iterable[str], at: datetime
    ) -> int:
        """Take ownership of snapshot entries another tool put in the cache; returns how
        many were not owned yet (an entry modelsync downloaded keeps its record)."""
        rows = [(repo, commit, path, model, _timestamp(at)) for path in paths]
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
        rows = self._select("SELECT * FROM owned_files ORDER BY repo, commit_sha, path")
        return [
            OwnedFile(
                repo=row["repo"],
                commit=row["commit_sha"],
                path=row["path"],
                model=row["model"],
                adopted=row["origin"] == "adopted",
                since=_parse_timestamp(row["since"]),
            )
            for row in rows
        ]

    # ----------------------------------------------------------------- leases

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
                    _timestamp(lease.acquired_at),
                    _timestamp(lease.heartbeat_at),
                    lease.ttl_seconds,
                ),
            )

    def renew_lease(self, lease_id: str, at: datetime, ttl_seconds: float | None = None) -> bool:
        """The heartbeat; False when the lease is gone (released, or pruned as void)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE leases SET heartbeat_at = ?, ttl_seconds = COALESCE(?, ttl_seconds) "
                "WHERE id = ?",
                (_timestamp(at), ttl_seconds, lease_id),
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
        return [_lease_from_row(row) for row in rows]

    def prune_leases(self, is_live: Callable[[Lease], bool]) -> int:
        """Drop the void leases (their holders died without releasing them)."""
        void = [lease.id for lease in self.leases() if not is_live(lease)]
        if not void:
            return 0
        with self._write() as conn:
            conn.executemany("DELETE FROM leases WHERE id = ?", [(i,) for i in void])
        return len(void)

    # ----------------------------------------------------------------- deletions

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
            live = [lease for lease in map(_lease_from_row, rows) if is_live(lease)]
            if live:
                raise InUseError(model, live)
            stamp = _timestamp(at)
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
                "UPDATE deletions SET finished_at = ? WHERE id = ?", (_timestamp(at), deletion_id)
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
                at=_parse_timestamp(row["evicted_at"]),
            )
            for row in rows
        }

    # ----------------------------------------------------------------- health checks

    def record_health(self, check: HealthCheck) -> None:
        """Keep the latest health check of ``check.model`` (earlier ones are not kept)."""
        probe_ok = None if check.probe_ok is None else int(check.probe_ok)
        with self._write() as conn:
            conn.execute(
                """
                INSERT OR REPLACE INTO health_checks
                    (model, commit_sha, checked_at, files_ok, probe_ok, probe_exit, probe_message)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    check.model,
                    check.commit,
                    _timestamp(check.checked_at),
                    int(check.files_ok),
                    probe_ok,
                    check.probe_exit,
                    check.probe_message,
                ),
            )

    def health_checks(self) -> dict[str, HealthCheck]:
        rows = self._select("SELECT * FROM health_checks ORDER BY model")
        return {
            row["model"]: HealthCheck(
                model=row["model"],
                commit=row["commit_sha"],
                checked_at=_parse_timestamp(row["checked_at"]),
                files_ok=bool(row["files_ok"]),
                probe_ok=None if row["probe_ok"] is None else bool(row["probe_ok"]),
                probe_exit=row["probe_exit"],
                probe_message=row["probe_message"],
            )
            for row in rows
        }

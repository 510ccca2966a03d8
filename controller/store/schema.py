"""The state database's schema: the migrations, and the ``user_version`` that counts them.

The schema evolves by appending to :data:`MIGRATIONS`.  ``PRAGMA user_version`` records how
many have been applied; opening the store applies the missing ones in a single transaction,
and refuses a database written by a newer modelsync rather than misreading it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller.store.errors import SchemaTooNewError

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


def latest_version() -> int:
    """The version this modelsync writes: how many migrations it knows."""
    return len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def too_new(path: Path, found: int) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"state database {path} has schema version {found}, but this modelsync only "
        f"knows versions up to {len(MIGRATIONS)}; upgrade modelsync, or point the manifest's "
        "`state` at another directory"
    )


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to date; return the resulting version.

    Runs inside the caller's write transaction, which must already hold the write lock
    (``BEGIN IMMEDIATE``) before the version is read here: two processes opening a fresh
    database at once then cannot both apply the same migration, and a failing statement
    leaves the schema as it was when the caller rolls back.
    """
    current = user_version(conn)
    if current > len(MIGRATIONS):
        raise too_new(path, current)
    for statements in MIGRATIONS[current:]:
        for statement in statements:
            conn.execute(statement)
    # PRAGMA cannot take parameters; the value is our own integer.
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    return len(MIGRATIONS)

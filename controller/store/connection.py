"""The connection to the state database: opening it, and the one short transaction per write.

One database, ``<state_dir>/modelsync.db``, shared by every process on the machine: the
application recording usage, the CLI, the controller.  WAL journal mode lets readers run
alongside the single writer, and a busy timeout makes a writer wait for another instead of
failing; each write is one short ``BEGIN IMMEDIATE`` transaction, so nobody waits long.

:class:`Database` is what every group of tables builds on (``verifications``, ``downloads``,
...): it owns the connection, and its ``_write``/``_select`` are the only ways they reach it.

A damaged database (a disk that filled mid-write, a bad sector, a careless ``cp``) is never
fatal: opening it read-write checks its integrity, and a database that fails -- there, or with
``database disk image is malformed`` at any later statement -- is moved aside as
``modelsync.db.damaged-<UTC time>`` (with its ``-wal``/``-shm``) and a new one takes its place,
with one warning saying what was lost (:mod:`controller.store.recovery`).  A read-only open
(planning, ``reconcile status``) must change nothing, so it leaves the file where it is, warns,
and reads it as empty.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from controller.store import recovery, schema
from controller.store.errors import StateError
from controller.store.recovery import Damaged, Recovery

DB_FILENAME = "modelsync.db"

# How long a writer waits for another process's transaction before giving up.  Writes are
# tiny, so hitting this means something is stuck, not merely busy.
BUSY_TIMEOUT_SECONDS = 10.0

_Opened = TypeVar("_Opened", bound="Database")


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


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite already rolls back by itself on some errors (disk full, I/O); a second
    # ROLLBACK would then fail and hide the error that matters.
    if conn.in_transaction:
        conn.execute("ROLLBACK")


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One transaction that takes the write lock at its start, not at its first write.

    Taking it first means a transaction that reads and then writes (a migration reading
    ``user_version``, a lease checking the deletion journal) decides on what it read: no
    other writer can slip in between.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode, waiting out other processes doing the same.

    WAL persists in the file, so this changes something only for a new database.  Changing
    the mode needs the file to itself, and SQLite answers "database is locked" at once, without
    its busy handler, when another connection holds it -- as happens when two processes open a
    new database together.  So the change is retried here, within the same bound as a write.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


# Opens retried while another process replaces the file under us; more means a pathological
# loop of replacements, and the last open is taken as it is.
_PIN_ATTEMPTS = 5


def _open_checked(path: Path) -> tuple[sqlite3.Connection, int, int]:
    """Connect read-write, check integrity and migrate: the connection, the schema version and
    the file's inode; raises :class:`Damaged` for a database that fails the check."""
    conn, inode = _connect_pinned(path)
    try:
        # It must precede the migration transaction: the journal mode cannot change inside one.
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL except on power loss
        conn.execute("PRAGMA foreign_keys = ON")
        recovery.check_integrity(conn)
        # All missing migrations in one transaction: a failing one leaves none applied.
        with _immediate(conn):
            version = schema.migrate(conn, path)
    except sqlite3.DatabaseError as e:
        conn.close()
        if recovery.is_damage(e):
            raise Damaged(str(e), inode) from None
        raise
    except Damaged as damage:
        conn.close()
        raise Damaged(damage.reason, inode) from None
    except BaseException:
        conn.close()
        raise
    return conn, version, inode


def _connect_pinned(path: Path) -> tuple[sqlite3.Connection, int]:
    """Connect read-write, and the inode of the very file the connection opened.

    The inode decides which file a recovery may move aside, so it must be the connection's:
    another process that found the same damage may replace the file between our open and a
    later look at the path, and that new database must never be taken for the damaged one.
    A path whose inode is the same before and after the open names the file opened (a new
    file cannot take the inode of one still open)."""
    for _ in range(_PIN_ATTEMPTS):
        before = recovery.inode_of(path)
        conn = _connect(str(path), uri=False)  # opens (or creates) the file at once
        after = recovery.inode_of(path)
        if before == after != -1:
            return conn, after
        conn.close()  # replaced or created under us: open again what is there now
    conn = _connect(str(path), uri=False)
    return conn, recovery.inode_of(path)


class Database:
    """One open state database, the base of :class:`controller.store.state.StateStore`.

    Thread safety: one connection per store, guarded by a lock, rather than one connection
    per thread.  Every operation is a single short statement or transaction, so threads of
    one process gain nothing from parallel connections (SQLite admits one writer at a time
    anyway), while a single connection can be closed from any thread and never leaks
    connections of threads that have finished.  Other processes still run concurrently
    through WAL.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, version: int, readonly: bool) -> None:
        self._conn: sqlite3.Connection | None = conn
        # Reentrant: a thread inside :meth:`together` reads and writes through the same lock.
        self._lock = threading.RLock()
        self._joined = threading.local()  # ``open``: this thread's writes share a transaction
        self.path = path
        self.schema_version = version
        self.readonly = readonly
        # The damaged database this store replaced, if it did (at its opening or later).
        self.recovery: Recovery | None = None
        self._warned_damage = False  # a read-only store says once that it reads as empty
        # The database file this connection opened: a damaged one is moved aside only if it
        # is still the one at ``path``, never a new one another process has put there.
        self._inode = recovery.inode_of(path)

    # ----------------------------------------------------------------- opening and closing

    @classmethod
    def open(cls: type[_Opened], state_dir: str | os.PathLike[str]) -> _Opened:
        """Open (creating the directory and database if needed) and migrate the store.

        A database that fails its integrity check is moved aside and replaced by a new one;
        :attr:`recovery` then says where it went, and a warning has been logged.
        """
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DB_FILENAME
        moved: Recovery | None = None
        # Twice at most: the database as found, then the one that replaced it (ours, or that of
        # another process which found the same damage first).  A new database that is
        # damaged too is not a state problem but a disk one, and is raised.
        for attempt in range(2):
            try:
                conn, version, inode = _open_checked(path)
                break
            except Damaged as damage:
                if attempt == 1:
                    raise StateError(f"state database {path}: {damage.reason}") from None
                moved = recovery.move_aside(path, damage) or moved
        store = cls(conn, path, version, readonly=False)
        store.recovery, store._inode = moved, inode
        return store

    @classmethod
    def open_readonly(cls: type[_Opened], state_dir: str | os.PathLike[str]) -> _Opened | None:
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
            version = schema.user_version(conn)
            if version > schema.latest_version():
                raise schema.too_new(path, version)
            recovery.check_integrity(conn)
        except sqlite3.DatabaseError as e:
            conn.close()
            if not recovery.is_damage(e):
                raise
            recovery.warn_read_as_empty(path, str(e))
            return None
        except Damaged as damage:
            conn.close()
            recovery.warn_read_as_empty(path, damage.reason)
            return None
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, version, readonly=True)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self: _Opened) -> _Opened:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- the two ways in

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state store {self.path} is closed")
        return self._conn

    @contextmanager
    def together(self) -> Iterator[None]:
        """Make every write of this thread inside the block one transaction: all of them are
        recorded, or none.  A file's download and the verification of its bytes are written
        so; it is also one commit instead of several, each with its locks and its pages
        appended to the log, which a first apply of many small files pays per file."""
        if getattr(self._joined, "open", False):
            yield  # already inside one: the outer block commits
            return
        with self._transaction():
            self._joined.open = True
            try:
                yield
            finally:
                self._joined.open = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, holding the thread lock for its whole length (or a
        part of the transaction of :meth:`together`).

        Damage found by the transaction replaces the database; the write itself is lost with
        it and raised as a :class:`StateError` (its body cannot be run again from here), but
        the next one goes to the new database.
        """
        if getattr(self._joined, "open", False):
            yield self._live()
            return
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StateError(f"state store {self.path} was opened read-only")
        with self._lock:
            try:
                with _immediate(self._live()) as conn:
                    yield conn
            except sqlite3.DatabaseError as e:
                if not recovery.is_damage(e):
                    raise
                self._replace_damaged(str(e))
                raise StateError(
                    f"state database {self.path} was damaged and has been replaced; "
                    "this change was not recorded"
                ) from None

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                if recovery.is_damage(e):
                    return self._after_damage(str(e), sql, params)
                # A read-only store cannot migrate an older database; a table a later
                # migration adds is simply empty from the reader's point of view.
                if (
                    isinstance(e, sqlite3.OperationalError)
                    and self.schema_version < schema.latest_version()
                    and "no such table" in str(e)
                ):
                    return []
                raise

    def _select_tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """:meth:`_select` as plain tuples: a read of tens of thousands of rows spends more
        on building a ``Row`` per row than on the query.  Any database error is left to
        :meth:`_select`, which asks again and knows how to recover or report it."""
        with self._lock:
            try:
                cursor = self._live().cursor()
                cursor.row_factory = None
                rows: list[tuple[Any, ...]] = cursor.execute(sql, params).fetchall()
                return rows
            except sqlite3.DatabaseError:
                pass
        return [tuple(row) for row in self._select(sql, params)]

    def _after_damage(self, reason: str, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        """A read that found damage: read-only, the database reads as empty from now on;
        read-write, it is replaced and the read asked of the new one."""
        if self.readonly:
            if not self._warned_damage:
                recovery.warn_read_as_empty(self.path, reason)
                self._warned_damage = True
            return []
        self._replace_damaged(reason)
        return self._live().execute(sql, params).fetchall()

    def _replace_damaged(self, reason: str) -> None:
        """Swap the open connection for one to a new database, the damaged one moved aside
        (unless another process already did).  The caller holds ``self._lock``."""
        self._live().close()
        self._conn = None
        moved = recovery.move_aside(self.path, Damaged(reason, self._inode))
        self.recovery = moved or self.recovery
        self._conn, self.schema_version, self._inode = _open_checked(self.path)

"""A damaged state database: recognising the damage, moving the file aside, saying what was lost.

Everything the database holds can be lost without losing a model: verification records are
rebuilt by hashing the files again (nothing is downloaded), and ownership lost means retention
deletes nothing it can no longer prove modelsync put there.  So a damaged database is moved
aside for a person to look at, and a new one is started, rather than stopping every command
until someone deletes the file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from controller.system.clock import utcnow

log = logging.getLogger("modelsync.store")

# The SQLite result codes of a damaged file: SQLITE_CORRUPT ("database disk image is
# malformed") and SQLITE_NOTADB ("file is not a database").  Busy, locked, full or read-only
# databases are not damaged and are never moved aside.
_DAMAGE_CODES = frozenset({11, 26})
_DAMAGE_WORDS = ("malformed", "not a database")

# The side files SQLite keeps beside a WAL database; they move with it so that the damaged
# copy can still be opened as it was.
_SIDE_FILES = ("", "-wal", "-shm")

LOST = (
    "usage history, verification records (models on disk are hashed again, not downloaded "
    "again), ownership (retention deletes nothing modelsync downloaded before until it is "
    "adopted again: `reconcile adopt NAME…`), leases, requests and pauses"
)


@dataclass(frozen=True)
class Recovery:
    """A damaged database this process moved aside."""

    damaged: Path  # where the damaged database is now
    reason: str


class Damaged(Exception):
    """The database at hand fails its integrity check; ``inode`` is the file that does."""

    def __init__(self, reason: str, inode: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.inode = inode


def is_damage(error: BaseException) -> bool:
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return (int(code) & 0xFF) in _DAMAGE_CODES
    return any(word in str(error) for word in _DAMAGE_WORDS)


def check_integrity(conn: sqlite3.Connection) -> None:
    """Raise :class:`Damaged` (inode unknown here) unless ``PRAGMA quick_check`` finds the
    database sound.  ``quick_check`` reads every page, as ``integrity_check`` does, but skips
    matching indexes against their tables: linear in the file's size, a few milliseconds for a
    database of this size, where a full check would be far slower on a long usage history."""
    rows = conn.execute("PRAGMA quick_check").fetchall()
    found = [str(row[0]) for row in rows]
    if found != ["ok"]:
        raise Damaged("; ".join(found[:3]), -1)


def inode_of(path: Path) -> int:
    try:
        return path.stat().st_ino
    except OSError:
        return -1


def move_aside(path: Path, damage: Damaged) -> Recovery | None:
    """Move the damaged database at ``path`` aside, with its side files, and warn once.

    ``None`` when another process already did: the file at ``path`` is no longer the one found
    damaged.  A lock file beside the database makes this one process at a time, so two that
    found the same damage never move a new database aside.
    """
    with FileLock(f"{path}.recovery.lock"):
        if inode_of(path) != damage.inode:
            return None
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        serial = 1
        while aside.exists():  # damaged twice within a second: keep both
            serial += 1
            aside = path.with_name(f"{path.name}.damaged-{stamp}.{serial}")
        for suffix in _SIDE_FILES:
            source = Path(f"{path}{suffix}")
            if source.exists():
                os.replace(source, f"{aside}{suffix}")
    log.warning(
        "state database %s was damaged (%s) and was moved aside to %s; a new one was "
        "created. Lost with it: %s",
        path,
        damage.reason,
        aside.name,
        LOST,
    )
    return Recovery(aside, damage.reason)


def warn_read_as_empty(path: Path, reason: str) -> None:
    log.warning(
        "state database %s is damaged (%s); read as empty, changing nothing: the next "
        "`reconcile --apply` moves it aside and starts a new one",
        path,
        reason,
    )

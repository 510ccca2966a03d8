"""Verification records: the latest hash check of each blob, and the file identity it saw.

A blob whose size, mtime and inode still match its record need not be hashed again (unless
``verify --full``); the record is replaced by every new check and dropped with the blob.
"""

from __future__ import annotations

import sqlite3

from controller.domain import Verification
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database

_INT64_LIMIT = 1 << 63


def _inode_to_sql(inode: int) -> int:
    # SQLite integers are signed 64-bit, but some file systems (NFS, FUSE, overlay) hand out
    # inode numbers above 2**63; store those as their two's-complement twin.
    return inode - (1 << 64) if inode >= _INT64_LIMIT else inode


def _inode_from_sql(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _verification_from_row(row: sqlite3.Row) -> Verification:
    return Verification(
        blob=row["blob"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        inode=_inode_from_sql(row["inode"]),
        digest=row["digest"],
        ok=bool(row["ok"]),
        checked_at=parse_timestamp(row["checked_at"]),
    )


class Verifications(Database):
    """The ``verifications`` table."""

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
                    timestamp(v.checked_at),
                ),
            )

    def verifications(self) -> dict[tuple[str, str], Verification]:
        """Every record: a pass over a large cache reads one per file, so the rows come as
        tuples, not ``Row`` objects, and each becomes its value directly.

        SQLite hands out a new string per column of every row: a repo's name is kept once,
        and a digest that is the blob's name (every good check) is that same string.  Without
        that, a third of the records' memory was copies.
        """
        rows = self._select_tuples(
            "SELECT repo, blob, size, mtime_ns, inode, digest, ok, checked_at "
            "FROM verifications ORDER BY repo, blob"
        )
        repos: dict[str, str] = {}
        found: dict[tuple[str, str], Verification] = {}
        for repo, blob, size, mtime_ns, inode, digest, ok, checked_at in rows:
            found[(repos.setdefault(repo, repo), blob)] = Verification(
                blob=blob,
                size=size,
                mtime_ns=mtime_ns,
                inode=_inode_from_sql(inode),
                digest=blob if digest == blob else digest,
                ok=bool(ok),
                checked_at=parse_timestamp(checked_at),
            )
        return found

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

"""Rows the state store's tests write, and raw looks at the database file beside the store."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from controller.domain import FileWork, Lease, Reason, RemoteFile, RemoteRevision, Verification
from controller.store import DB_FILENAME, DownloadOutcome, StateStore, leases
from tests.support.factories import C1, NOW

REPO_ROOT = Path(__file__).resolve().parents[3]
FILES = (FileWork("config.json", 10, "c" * 40),)


def verification(blob: str = "f" * 64, **changes: object) -> Verification:
    v = Verification(
        blob=blob,
        size=1234,
        mtime_ns=1_700_000_000_123_456_789,
        inode=42,
        digest=blob,
        ok=True,
        checked_at=NOW,
    )
    return dataclasses.replace(v, **changes)  # type: ignore[arg-type]


def download(store: StateStore, *, model: str = "t2v", offset: int = 0, **changes: object) -> int:
    """Record one attempt that started ``offset`` seconds after NOW and took a second."""
    fields: dict[str, object] = {
        "model": model,
        "repo": "Wan-AI/Wan2.2-T2V-A14B",
        "revision": "main",
        "commit": C1,
        "path": "model.safetensors",
        "bytes": 1000,
        "started_at": NOW + timedelta(seconds=offset),
        "finished_at": NOW + timedelta(seconds=offset + 1),
        "outcome": DownloadOutcome.OK,
    }
    fields.update(changes)
    return store.record_download(**fields)  # type: ignore[arg-type]


def remote(commit: str = C1) -> RemoteRevision:
    return RemoteRevision(
        repo="Wan-AI/Wan2.2-TI2V-5B",
        revision="main",
        commit=commit,
        files=(
            RemoteFile("config.json", 512, "1" * 40),
            RemoteFile("diffusion_pytorch_model.safetensors", 10**10, "2" * 40, "3" * 64),
        ),
    )


def lease(
    model: str = "a", *, pid: int | None = None, at: datetime = NOW, ttl: float = 60
) -> Lease:
    return leases.new_lease(model, at, ttl_seconds=ttl, pid=pid)


def begin(store: StateStore, reason: Reason = Reason.UNUSED, model: str = "a") -> int:
    """Journal the deletion of ``model``'s ``FILES``, with liveness judged at NOW."""
    return store.begin_deletion(
        model=model,
        repo="org/a",
        commit=C1,
        reason=reason,
        message="unused",
        files=FILES,
        at=NOW,
        is_live=lambda held: leases.is_live(held, NOW),
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def raw(state_dir: Path) -> sqlite3.Connection:
    """A plain connection to the store's file, to look at it as SQLite sees it."""
    return sqlite3.connect(state_dir / DB_FILENAME)


def tables(state_dir: Path) -> set[str]:
    with raw(state_dir) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def user_version(state_dir: Path) -> int:
    with raw(state_dir) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


# Every read the store has, and what it gives when there is nothing to read.
READS: dict[str, tuple[Callable[[StateStore], object], object]] = {
    "verifications": (lambda s: s.verifications(), {}),
    "verifications_for": (lambda s: s.verifications_for("org/repo"), {}),
    "verification": (lambda s: s.verification("org/repo", "f" * 64), None),
    "download_history": (lambda s: s.download_history(), []),
    "throughput": (lambda s: s.throughput(), None),
    "owned": (lambda s: s.owned(), []),
    "recall_remote": (lambda s: s.recall_remote(remote().repo, "main"), None),
    "usage_aggregates": (lambda s: s.usage_aggregates(since=NOW, recent_since=NOW), {}),
    "usage_events": (lambda s: s.usage_events(), []),
    "requests": (lambda s: s.requests(), {}),
    "paused": (lambda s: s.paused(), {}),
    "leases": (lambda s: s.leases(), []),
    "pending_deletions": (lambda s: s.pending_deletions(), []),
    "deletion_history": (lambda s: s.deletion_history(), []),
    "evictions": (lambda s: s.evictions(), {}),
    "health_checks": (lambda s: s.health_checks(), {}),
}

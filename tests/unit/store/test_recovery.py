"""A damaged state database is moved aside and replaced, never fatal: real SQLite files
damaged as a full disk, a bad sector or a careless ``cp`` would damage them."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.store import DB_FILENAME, StateStore, connection, recovery
from controller.store.columns import timestamp
from tests.support.factories import NOW
from tests.unit.store.samples import verification

PAGE = 4096


def filled(state_dir: Path, uses: int = 200) -> Path:
    """A database with a verification record and ``uses`` uses in it; its path."""
    with StateStore.open(state_dir) as store:
        store.record_verification("org/repo", verification())
        for _ in range(uses):
            store.record_use("tiny", NOW, 1.0)
    return state_dir / DB_FILENAME


def garbage_over_pages(db: Path) -> None:
    with db.open("r+b") as f:
        f.seek(PAGE)
        f.write(b"\xa5" * (2 * PAGE))


def garbage_over_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"not sqlite at all" * 6)


def truncated(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2 + 100)


def aside(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob(f"{DB_FILENAME}.damaged-*"))


DAMAGES: list[Callable[[Path], None]] = [garbage_over_pages, garbage_over_header, truncated]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_a_damaged_database_is_moved_aside_and_a_new_one_started(
    tmp_path: Path, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    db = filled(tmp_path)
    damage(db)
    damaged_bytes = db.read_bytes()

    with (
        caplog.at_level(logging.WARNING, logger="modelsync.store"),
        StateStore.open(tmp_path) as store,
    ):
        assert store.verifications() == {}
        store.record_use("tiny", NOW)  # the new database takes writes
        assert store.recovery is not None
        moved = store.recovery.damaged

    assert aside(tmp_path) == [moved]
    assert moved.read_bytes() == damaged_bytes  # kept as it was, for a person to look at
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for lost in ("usage history", "verification records", "ownership", "leases", "requests"):
        assert lost in warnings[0]
    assert "reconcile adopt NAME" in warnings[0]
    assert moved.name in warnings[0]
    with StateStore.open(tmp_path) as again:  # the new one is sound: nothing moved twice
        assert again.recovery is None
    assert aside(tmp_path) == [moved]


def test_the_side_files_move_with_the_database(tmp_path: Path) -> None:
    # SQLite removes an idle WAL when its last connection closes, so the side files are
    # there to move only while another process holds the damaged database open: written
    # here as they would be then.
    db = tmp_path / DB_FILENAME
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").write_bytes(suffix.encode() or b"db")

    moved = recovery.move_aside(db, recovery.Damaged("malformed", recovery.inode_of(db)))

    assert moved is not None
    assert [Path(f"{moved.damaged}{s}").read_bytes() for s in ("", "-wal", "-shm")] == [
        b"db",
        b"-wal",
        b"-shm",
    ]
    assert not db.exists() and not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()


def test_a_database_another_process_already_replaced_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / DB_FILENAME
    db.write_bytes(b"damaged")
    found = recovery.Damaged("malformed", recovery.inode_of(db))
    replacement = tmp_path / "new"
    replacement.write_bytes(b"new")
    os.replace(replacement, db)  # what the other process did meanwhile

    assert recovery.move_aside(db, found) is None
    assert db.read_bytes() == b"new"
    assert aside(tmp_path) == []


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__)
def test_a_read_only_open_of_a_damaged_database_changes_nothing_and_reads_as_empty(
    tmp_path: Path, damage: Callable[[Path], None], caplog: pytest.LogCaptureFixture
) -> None:
    db = filled(tmp_path)
    damage(db)
    damaged_bytes = db.read_bytes()

    with caplog.at_level(logging.WARNING, logger="modelsync.store"):
        assert StateStore.open_readonly(tmp_path) is None

    assert db.read_bytes() == damaged_bytes
    assert aside(tmp_path) == []
    assert "read as empty" in caplog.text


def test_damage_found_by_a_later_read_replaces_the_database(tmp_path: Path) -> None:
    # More uses than SQLite's page cache holds, so that reading them goes back to the file.
    db = filled(tmp_path, uses=0)
    with StateStore.open(tmp_path) as store, store._write() as conn:
        conn.executemany(
            "INSERT INTO usage_events (model, used_at) VALUES (?, ?)",
            [("tiny", timestamp(NOW))] * 200_000,
        )
    with StateStore.open(tmp_path) as store:
        assert store.recovery is None
        with db.open("r+b") as f:  # a bad sector under an open store
            f.seek(db.stat().st_size // 3)
            f.write(b"\xa5" * (64 * PAGE))

        assert store.usage_aggregates(since=NOW, recent_since=NOW) == {}

        assert store.recovery is not None
        store.record_use("tiny", NOW)
        assert store.usage_aggregates(since=NOW, recent_since=NOW)["tiny"].uses == 1
    assert aside(tmp_path) == [store.recovery.damaged]


def test_two_stores_finding_the_same_damage_move_it_aside_once(tmp_path: Path) -> None:
    garbage_over_header(filled(tmp_path))
    opened: list[StateStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def open_store() -> None:
        start.wait()
        try:
            opened.append(StateStore.open(tmp_path))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(aside(tmp_path)) == 1
    for store in opened:
        store.record_use("tiny", NOW)
    assert opened[0].usage_aggregates(since=NOW, recent_since=NOW)["tiny"].uses == 2
    for store in opened:
        store.close()


def test_a_busy_database_is_not_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    filled(tmp_path)
    # Waiting out another writer's lock is an error of its own, not damage: the busy timeout is
    # shortened so the test does not wait the full ten seconds.
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_SECONDS", 0.1)
    with (
        StateStore.open(tmp_path) as holder,
        holder._write(),
        pytest.raises(sqlite3.OperationalError, match="locked"),
    ):
        StateStore.open(tmp_path)
    assert aside(tmp_path) == []

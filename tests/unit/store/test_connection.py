"""Opening, sharing and closing the state database: real SQLite files, real threads and
processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.domain import HealthCheck, Reason
from controller.store import DB_FILENAME, StateError, StateStore, schema
from tests.support.factories import C1, NOW
from tests.unit.store.samples import (
    FILES,
    REPO_ROOT,
    download,
    lease,
    raw,
    remote,
    tables,
    user_version,
    verification,
)


def test_open_creates_directory_schema_and_wal(tmp_path: Path) -> None:
    state_dir = tmp_path / "nested" / "state"

    with StateStore.open(state_dir) as store:
        assert store.path == state_dir / DB_FILENAME
        assert store.schema_version == len(schema.MIGRATIONS)

    assert {"verifications", "downloads", "remote_revisions"} <= tables(state_dir)
    assert user_version(state_dir) == len(schema.MIGRATIONS)
    with raw(state_dir) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_database_another_process_is_writing_is_opened_once_it_lets_go(
    tmp_path: Path,
) -> None:
    # Two processes opening a new database together: the switch to WAL needs the file to
    # itself, and SQLite refuses it at once (no busy handler) while another holds the write
    # lock.
    path = tmp_path / DB_FILENAME
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE early (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO early VALUES (1)")  # the write lock, held
    release = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    release.start()
    try:
        with StateStore.open(tmp_path) as store:
            assert store.schema_version == len(schema.MIGRATIONS)
    finally:
        release.join()
        writer.close()
    with raw(tmp_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", verification())
    tables_before = tables(tmp_path)

    with StateStore.open(tmp_path) as store:
        assert store.schema_version == len(schema.MIGRATIONS)
        assert list(store.verifications()) == [("org/repo", "f" * 64)]

    assert tables(tmp_path) == tables_before
    assert user_version(tmp_path) == len(schema.MIGRATIONS)


def test_threads_sharing_one_store_lose_no_writes(store: StateStore) -> None:
    def write(n: int) -> None:
        for i in range(50):
            download(store, model=f"thread-{n}", offset=i)
            store.record_verification(f"repo-{n}", verification(f"{i:064x}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(store.download_history(limit=10_000)) == 400
    assert len(store.verifications()) == 400


def test_writes_together_are_recorded_together(store: StateStore) -> None:
    with store.together():
        download(store)
        store.record_verification("org/repo", verification())
        # Read back on the same thread, inside the block: the writes so far are there.
        assert len(store.download_history()) == 1

    assert len(store.download_history()) == 1
    assert len(store.verifications()) == 1


def test_writes_together_are_none_recorded_when_one_fails(store: StateStore) -> None:
    with pytest.raises(ValueError), store.together():
        store.record_verification("org/repo", verification())
        download(store)
        download(store, offset=5, finished_at=NOW)  # finished before it started: refused

    assert store.verifications() == {}
    assert store.download_history() == []


def test_a_block_inside_a_block_commits_with_the_outer_one(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.together():
        with store.together():
            download(store)
        raise RuntimeError("after the inner block")

    assert store.download_history() == []


def test_writes_together_are_unseen_by_another_reader_until_the_block_ends(
    store: StateStore, tmp_path: Path
) -> None:
    reader = StateStore.open_readonly(tmp_path / "state")
    assert reader is not None
    with reader:
        with store.together():
            download(store)
            store.record_verification("org/repo", verification())
            assert reader.download_history() == []
            assert reader.verifications() == {}
        assert len(reader.download_history()) == 1
        assert len(reader.verifications()) == 1


def test_other_threads_write_between_blocks_not_inside_them(store: StateStore) -> None:
    def write(n: int) -> None:
        for i in range(20):
            with store.together():
                download(store, model=f"thread-{n}", offset=i)
                store.record_verification(f"repo-{n}", verification(f"{i:064x}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    plain = threading.Thread(
        target=lambda: [download(store, model="plain", offset=i) for i in range(20)]
    )
    plain.start()
    for t in [*threads, plain]:
        t.join()

    assert len(store.download_history(limit=1000)) == 100
    assert len(store.verifications()) == 80


_WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from controller.store import DownloadOutcome, StateStore

    state_dir, name, go, count = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with StateStore.open(state_dir) as store:
        (state_dir / f"{name}.ready").touch()
        while not go.exists():  # start together so the writes really interleave
            time.sleep(0.001)
        for i in range(count):
            store.record_download(
                model=name, repo="org/repo", revision="main", commit="a" * 40,
                path=f"file-{i}", bytes=i, started_at=t0 + timedelta(seconds=i),
                finished_at=t0 + timedelta(seconds=i + 1), outcome=DownloadOutcome.OK,
            )
            time.sleep(0.0002)  # like real writers, leave gaps the other process can use
    """
)


def test_two_processes_writing_concurrently_lose_nothing(tmp_path: Path) -> None:
    count = 500
    go = tmp_path / "go"
    StateStore.open(tmp_path).close()  # as the controller would have, before the app starts
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), name, str(go), str(count)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("app", "controller")
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"{name}.ready").exists() for name in ("app", "controller")):
        assert time.monotonic() < deadline, "writers did not start"
        assert all(w.poll() is None for w in writers), "a writer exited early"
        time.sleep(0.005)
    go.touch()
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err

    with StateStore.open(tmp_path) as store:
        history = store.download_history(limit=10 * count)

    assert len(history) == 2 * count
    assert len({r.id for r in history}) == 2 * count
    for name in ("app", "controller"):
        assert sorted(r.path for r in history if r.model == name) == sorted(
            f"file-{i}" for i in range(count)
        )
    # The writes really overlapped (one process did not simply finish before the other).
    by_insertion = [r.model for r in sorted(history, key=lambda r: r.id)]
    assert sum(a != b for a, b in zip(by_insertion, by_insertion[1:], strict=False)) > 1


# --------------------------------------------------------------------------- read-only


def test_readonly_open_of_missing_database_creates_nothing(tmp_path: Path) -> None:
    absent_dir = tmp_path / "state"
    assert StateStore.open_readonly(absent_dir) is None
    assert not absent_dir.exists()

    existing_dir = tmp_path / "empty"
    existing_dir.mkdir()
    assert StateStore.open_readonly(existing_dir) is None
    assert list(existing_dir.iterdir()) == []


def test_readonly_store_reads_what_a_live_writer_commits(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", verification())
        store.remember_remote(remote(), observed_at=NOW)
        download(store)

        writer = StateStore.open_readonly(tmp_path)
        assert writer is not None
        with writer:
            assert writer.readonly
            assert list(writer.verifications()) == [("org/repo", "f" * 64)]
            assert writer.recall_remote(remote().repo, "main") is not None
            assert len(writer.download_history()) == 1

            store.forget_verification("org/repo", "f" * 64)
            assert writer.verifications() == {}


# One call of every write the store has: the read-only and closed stores refuse them all.
WRITES: dict[str, Callable[[StateStore], object]] = {
    "record_verification": lambda s: s.record_verification("org/repo", verification()),
    "forget_verification": lambda s: s.forget_verification("org/repo", "f" * 64),
    "record_download": download,
    "adopt": lambda s: s.adopt("a", "org/a", C1, ["x.bin"], NOW),
    "remember_remote": lambda s: s.remember_remote(remote(), observed_at=NOW),
    "record_use": lambda s: s.record_use("a", NOW),
    "prune_usage": lambda s: s.prune_usage(NOW),
    "add_request": lambda s: s.add_request("a", NOW),
    "clear_request": lambda s: s.clear_request("a"),
    "pause": lambda s: s.pause("a", NOW),
    "resume": lambda s: s.resume("a"),
    "add_lease": lambda s: s.add_lease(lease()),
    "renew_lease": lambda s: s.renew_lease("id", NOW),
    "release_lease": lambda s: s.release_lease("id"),
    "begin_deletion": lambda s: s.begin_deletion(
        model="a",
        repo="org/a",
        commit=C1,
        reason=Reason.UNUSED,
        message="unused",
        files=FILES,
        at=NOW,
        is_live=lambda _: False,
    ),
    "finish_deletion": lambda s: s.finish_deletion(1, NOW, repo="org/a", commit=C1, paths=[]),
    "record_health": lambda s: s.record_health(HealthCheck("a", C1, NOW, files_ok=True)),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_readonly_store_refuses_every_write(
    tmp_path: Path, write: Callable[[StateStore], object]
) -> None:
    StateStore.open(tmp_path).close()
    before = (tmp_path / DB_FILENAME).read_bytes()
    writer = StateStore.open_readonly(tmp_path)
    assert writer is not None
    with writer, pytest.raises(StateError, match="read-only"):
        write(writer)
    assert (tmp_path / DB_FILENAME).read_bytes() == before


@pytest.mark.parametrize("use", [*WRITES.values(), StateStore.verifications], ids=[*WRITES, "read"])
def test_a_closed_store_refuses_use(tmp_path: Path, use: Callable[[StateStore], object]) -> None:
    store = StateStore.open(tmp_path)
    store.close()
    with pytest.raises(StateError, match="closed"):
        use(store)


def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.close()
    store.close()
    with StateStore.open(tmp_path) as again:  # and the file is still a good database
        assert again.verifications() == {}

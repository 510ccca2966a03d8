"""The SQLite state store, against real SQLite files and real concurrent processes."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.domain import RemoteFile, RemoteRevision, Verification
from controller.store import state
from controller.store.state import (
    DB_FILENAME,
    DownloadOutcome,
    SchemaTooNewError,
    StateError,
    StateStore,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def _raw(state_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(state_dir / DB_FILENAME)


def _tables(state_dir: Path) -> set[str]:
    with _raw(state_dir) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def _user_version(state_dir: Path) -> int:
    with _raw(state_dir) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _verification(blob: str = "f" * 64, **changes: object) -> Verification:
    v = Verification(
        blob=blob,
        size=1234,
        mtime_ns=1_700_000_000_123_456_789,
        inode=42,
        digest=blob,
        ok=True,
        checked_at=T0,
    )
    return dataclasses.replace(v, **changes)  # type: ignore[arg-type]


def _download(store: StateStore, *, model: str = "t2v", offset: int = 0, **changes: object) -> int:
    fields: dict[str, object] = {
        "model": model,
        "repo": "Wan-AI/Wan2.2-T2V-A14B",
        "revision": "main",
        "commit": COMMIT_A,
        "path": "model.safetensors",
        "bytes": 1000,
        "started_at": T0 + timedelta(seconds=offset),
        "finished_at": T0 + timedelta(seconds=offset + 1),
        "outcome": DownloadOutcome.OK,
    }
    fields.update(changes)
    return store.record_download(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- schema


def test_open_creates_directory_schema_and_wal(tmp_path: Path) -> None:
    state_dir = tmp_path / "nested" / "state"

    with StateStore.open(state_dir) as store:
        assert store.path == state_dir / DB_FILENAME
        assert store.schema_version == len(state.MIGRATIONS)

    assert {"verifications", "downloads", "remote_revisions"} <= _tables(state_dir)
    assert _user_version(state_dir) == len(state.MIGRATIONS)
    with _raw(state_dir) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", _verification())
    tables_before = _tables(tmp_path)

    with StateStore.open(tmp_path) as store:
        assert store.schema_version == len(state.MIGRATIONS)
        assert list(store.verifications()) == [("org/repo", "f" * 64)]

    assert _tables(tmp_path) == tables_before
    assert _user_version(tmp_path) == len(state.MIGRATIONS)


def test_appended_migration_is_applied_on_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", _verification())
    later = (*state.MIGRATIONS, ("CREATE TABLE later_table (model TEXT, at TEXT)",))
    monkeypatch.setattr(state, "MIGRATIONS", later)

    with StateStore.open(tmp_path) as store:
        assert store.schema_version == len(later)
        assert list(store.verifications()) == [("org/repo", "f" * 64)]

    assert "later_table" in _tables(tmp_path)
    assert _user_version(tmp_path) == len(later)


def test_failing_migration_is_rolled_back_entirely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    StateStore.open(tmp_path).close()
    version = _user_version(tmp_path)
    broken = (*state.MIGRATIONS, ("CREATE TABLE half_done (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(state, "MIGRATIONS", broken)

    with pytest.raises(sqlite3.OperationalError):
        StateStore.open(tmp_path)

    assert "half_done" not in _tables(tmp_path)
    assert _user_version(tmp_path) == version


def test_database_from_a_newer_version_is_refused_clearly(tmp_path: Path) -> None:
    StateStore.open(tmp_path).close()
    future = len(state.MIGRATIONS) + 5
    with _raw(tmp_path) as conn:
        conn.execute(f"PRAGMA user_version = {future}")

    with pytest.raises(SchemaTooNewError, match=rf"schema version {future}.*upgrade modelsync"):
        StateStore.open(tmp_path)
    with pytest.raises(SchemaTooNewError):
        StateStore.open_readonly(tmp_path)

    assert _user_version(tmp_path) == future  # refused, not downgraded


# --------------------------------------------------------------------------- verifications


def test_verification_round_trip(tmp_path: Path) -> None:
    cest = timezone(timedelta(hours=2))
    good = _verification("a" * 64, checked_at=datetime(2025, 3, 1, 14, 0, tzinfo=cest))
    bad = _verification("b" * 40, ok=False, digest="c" * 40, inode=2**64 - 5)
    other = _verification("a" * 64, size=1)

    with StateStore.open(tmp_path) as store:
        store.record_verification("org/one", good)
        store.record_verification("org/one", bad)
        store.record_verification("org/two", other)

    with StateStore.open(tmp_path) as store:
        assert store.verifications() == {
            ("org/one", "a" * 64): good,
            ("org/one", "b" * 40): bad,
            ("org/two", "a" * 64): other,
        }
        assert store.verifications_for("org/one") == {"a" * 64: good, "b" * 40: bad}
        assert store.verifications_for("org/absent") == {}
        recalled = store.verifications_for("org/one")["a" * 64].checked_at
        assert recalled.utcoffset() == timedelta(0)  # stored and returned in UTC


def test_recording_again_replaces_the_previous_check(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", _verification(ok=True))
        newer = _verification(ok=False, mtime_ns=5, checked_at=T0 + timedelta(days=1))
        store.record_verification("org/repo", newer)

        assert store.verifications_for("org/repo") == {"f" * 64: newer}


def test_forget_verification(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", _verification("a" * 64))
        store.record_verification("org/repo", _verification("b" * 64))

        store.forget_verification("org/repo", "a" * 64)
        store.forget_verification("org/repo", "never-recorded")

        assert list(store.verifications_for("org/repo")) == ["b" * 64]


def test_naive_timestamps_are_rejected(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store, pytest.raises(ValueError, match="time zone"):
        store.record_verification("org/repo", _verification(checked_at=datetime(2025, 1, 1)))


# --------------------------------------------------------------------------- remote revisions


def _remote(commit: str = COMMIT_A) -> RemoteRevision:
    return RemoteRevision(
        repo="Wan-AI/Wan2.2-TI2V-5B",
        revision="main",
        commit=commit,
        files=(
            RemoteFile("config.json", 512, "1" * 40),
            RemoteFile("diffusion_pytorch_model.safetensors", 10**10, "2" * 40, "3" * 64),
        ),
    )


def test_remote_revision_round_trips_and_comes_back_stale(tmp_path: Path) -> None:
    rev = _remote()
    with StateStore.open(tmp_path) as store:
        store.remember_remote(rev, observed_at=T0)

    with StateStore.open(tmp_path) as store:
        recalled = store.recall_remote(rev.repo, "main")

    assert recalled == dataclasses.replace(rev, stale=True)


def test_remembering_again_keeps_the_latest_answer(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.remember_remote(_remote(COMMIT_A), observed_at=T0)
        store.remember_remote(_remote(COMMIT_B), observed_at=T0 + timedelta(hours=1))

        recalled = store.recall_remote("Wan-AI/Wan2.2-TI2V-5B", "main")
        assert recalled is not None
        assert recalled.commit == COMMIT_B
        assert store.recall_remote("Wan-AI/Wan2.2-TI2V-5B", "other-branch") is None
        assert store.recall_remote("nobody/nothing", "main") is None


def test_a_stale_revision_cannot_be_remembered_as_news(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store, pytest.raises(ValueError, match="stale"):
        store.remember_remote(dataclasses.replace(_remote(), stale=True), observed_at=T0)


# --------------------------------------------------------------------------- downloads


def test_download_history_newest_first_filtered_and_limited(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        first = _download(store, model="t2v", offset=0)
        _download(store, model="i2v", offset=10, outcome=DownloadOutcome.FAILED, message="reset")
        third = _download(store, model="t2v", offset=20, outcome=DownloadOutcome.CORRUPT)

        history = store.download_history()
        assert [r.model for r in history] == ["t2v", "i2v", "t2v"]
        assert [r.id for r in store.download_history("t2v")] == [third, first]
        assert len(store.download_history(limit=1)) == 1
        assert store.download_history("absent") == []

    failed = history[1]
    assert failed.outcome is DownloadOutcome.FAILED
    assert failed.message == "reset"
    assert failed.repo == "Wan-AI/Wan2.2-T2V-A14B"
    assert failed.commit == COMMIT_A
    assert failed.started_at == T0 + timedelta(seconds=10)
    assert failed.finished_at == T0 + timedelta(seconds=11)
    assert failed.seconds == 1.0


def test_download_duration_may_come_from_a_monotonic_clock(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        _download(store, seconds=0.25)
        assert store.download_history()[0].seconds == 0.25

        with pytest.raises(ValueError, match="seconds"):
            _download(store, started_at=T0, finished_at=T0 - timedelta(seconds=1))


def test_throughput_over_the_last_successful_downloads(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        assert store.throughput() is None

        _download(store, offset=0, bytes=10_000, seconds=1.0)  # oldest: outside window=2
        _download(store, offset=1, bytes=999_999, seconds=1.0, outcome=DownloadOutcome.FAILED)
        _download(store, offset=2, bytes=300, seconds=1.0)
        _download(store, offset=3, bytes=0, seconds=5.0)  # nothing moved: not a rate sample
        _download(store, offset=4, bytes=900, seconds=2.0)

        assert store.throughput(window=2) == pytest.approx((300 + 900) / 3.0)
        assert store.throughput() == pytest.approx((10_000 + 300 + 900) / 4.0)


def test_invalid_outcome_is_rejected(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store, pytest.raises(ValueError):
        _download(store, outcome="maybe")


def test_threads_sharing_one_store_lose_no_writes(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:

        def write(n: int) -> None:
            for i in range(50):
                _download(store, model=f"thread-{n}", offset=i)
                store.record_verification(f"repo-{n}", _verification(f"{i:064x}"))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert len(store.download_history(limit=10_000)) == 400
        assert len(store.verifications()) == 400


_WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from controller.store.state import DownloadOutcome, StateStore

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


def test_readonly_store_reads_but_never_writes(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", _verification())
        store.remember_remote(_remote(), observed_at=T0)
        _download(store)

        reader = StateStore.open_readonly(tmp_path)
        assert reader is not None
        with reader:
            assert reader.readonly
            assert list(reader.verifications()) == [("org/repo", "f" * 64)]
            assert reader.recall_remote(_remote().repo, "main") is not None
            assert len(reader.download_history()) == 1
            with pytest.raises(StateError, match="read-only"):
                reader.forget_verification("org/repo", "f" * 64)

            # A reader alongside a live writer sees the writer's committed changes.
            store.forget_verification("org/repo", "f" * 64)
            assert reader.verifications() == {}


def test_readonly_store_on_an_older_schema_reads_missing_tables_as_empty(tmp_path: Path) -> None:
    with _raw(tmp_path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")  # a database at schema version 0

    reader = StateStore.open_readonly(tmp_path)
    assert reader is not None
    with reader:
        assert reader.schema_version == 0
        assert reader.verifications() == {}
        assert reader.download_history() == []
        assert reader.throughput() is None
        assert reader.recall_remote("org/repo", "main") is None

    assert _tables(tmp_path) == {"unrelated"}  # not migrated by a reader


def test_closed_store_refuses_use_and_close_is_idempotent(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StateError, match="closed"):
        store.verifications()
    with pytest.raises(StateError, match="closed"):
        store.forget_verification("org/repo", "x")

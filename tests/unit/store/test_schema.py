"""The schema's migrations, on real database files: applied once, all or none, never
downgraded, and an older database read without migrating it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.store import SchemaTooNewError, StateStore, schema
from tests.unit.store.samples import READS, raw, tables, user_version, verification


def test_appended_migration_is_applied_on_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StateStore.open(tmp_path) as store:
        store.record_verification("org/repo", verification())
    later = (*schema.MIGRATIONS, ("CREATE TABLE later_table (model TEXT, at TEXT)",))
    monkeypatch.setattr(schema, "MIGRATIONS", later)

    with StateStore.open(tmp_path) as store:
        assert store.schema_version == len(later)
        assert list(store.verifications()) == [("org/repo", "f" * 64)]

    assert "later_table" in tables(tmp_path)
    assert user_version(tmp_path) == len(later)


def test_failing_migration_is_rolled_back_entirely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    StateStore.open(tmp_path).close()
    version = user_version(tmp_path)
    broken = (*schema.MIGRATIONS, ("CREATE TABLE half_done (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", broken)

    with pytest.raises(sqlite3.OperationalError):
        StateStore.open(tmp_path)

    assert "half_done" not in tables(tmp_path)
    assert user_version(tmp_path) == version


def test_database_from_a_newer_version_is_refused_clearly(tmp_path: Path) -> None:
    StateStore.open(tmp_path).close()
    future = len(schema.MIGRATIONS) + 5
    with raw(tmp_path) as conn:
        conn.execute(f"PRAGMA user_version = {future}")

    with pytest.raises(SchemaTooNewError, match=rf"schema version {future}.*upgrade modelsync"):
        StateStore.open(tmp_path)
    with pytest.raises(SchemaTooNewError):
        StateStore.open_readonly(tmp_path)

    assert user_version(tmp_path) == future  # refused, not downgraded


@pytest.mark.parametrize("version", range(len(schema.MIGRATIONS)))
@pytest.mark.parametrize(("read", "empty"), READS.values(), ids=READS.keys())
def test_a_reader_of_an_older_database_reads_later_tables_as_empty(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: int,
    read: Callable[[StateStore], object],
    empty: object,
) -> None:
    """``--plan`` opens read-only and cannot migrate: what a later migration adds is empty."""
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:version])
    StateStore.open(tmp_path).close()
    monkeypatch.undo()
    written = tables(tmp_path)

    reader = StateStore.open_readonly(tmp_path)
    assert reader is not None
    with reader:
        assert reader.schema_version == version
        assert read(reader) == empty

    assert tables(tmp_path) == written  # not migrated by a reader
    assert user_version(tmp_path) == version

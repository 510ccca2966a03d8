"""A damaged state database costs a warning and a re-hash: not a traceback, not a download, and
not a model deleted that modelsync can no longer prove it owns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.store import DB_FILENAME, StateStore
from tests.support.cli import Run, Workdir
from tests.support.hub import LocalHub, safetensors_bytes

FILES = {
    "config.json": b'{"model_type": "tiny"}',
    "model.safetensors": safetensors_bytes(b"w" * 200_000),
}
PAGE = 4096


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", FILES)
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest([{"name": "tiny", "repo": "org/tiny"}])
    return w


def ok(run: Run, code: int = 0) -> Run:
    assert run.code == code, run.out + run.err
    return run


def damage(db: Path) -> bytes:
    """Garbage over the pages after the header, as a bad sector or a full disk leaves; the
    damaged bytes."""
    with db.open("r+b") as f:
        f.seek(PAGE)
        f.write(b"\xa5" * (3 * PAGE))
    return db.read_bytes()


def aside(work: Workdir) -> list[Path]:
    return sorted(work.state.glob(f"{DB_FILENAME}.damaged-*"))


def file_bytes_served(hub: LocalHub) -> int:
    return sum(r.bytes_sent for r in hub.requests_for("*/resolve/*", method="GET"))


def test_apply_on_a_damaged_database_warns_rehashes_and_downloads_nothing(
    work: Workdir, hub: LocalHub
) -> None:
    ok(work.reconcile("--apply"))
    damaged = damage(work.state / DB_FILENAME)
    hub.clear_requests()

    run = ok(work.reconcile("--apply"))

    assert "Traceback" not in run.err
    warnings = [line for line in run.err.splitlines() if "was damaged" in line]
    assert len(warnings) == 1, run.err
    assert "reconcile adopt NAME" in warnings[0]
    assert file_bytes_served(hub) == 0
    assert work.model_status("tiny")["phase"] == "AVAILABLE"
    [kept] = aside(work)
    assert kept.read_bytes() == damaged
    assert kept.name in warnings[0]
    # Re-hashed: the new database holds a verification of every file, made by this apply.
    with StateStore.open(work.state) as store:
        assert store.recovery is None
        assert len(store.verifications()) == len(FILES)


def test_plan_on_a_damaged_database_changes_nothing(work: Workdir) -> None:
    ok(work.reconcile("--apply"))
    db = work.state / DB_FILENAME
    damaged = damage(db)
    status_before = work.status_file.read_bytes()

    run = ok(work.reconcile("--plan"))

    assert "Traceback" not in run.err
    assert "read as empty" in run.err
    assert "verify" in run.out  # verification records read as gone: a re-hash, no download
    assert "download" not in run.out.split("Plan:")[0]
    assert db.read_bytes() == damaged
    assert aside(work) == []
    assert work.status_file.read_bytes() == status_before


def test_nothing_is_deleted_that_the_lost_database_owned(work: Workdir, hub: LocalHub) -> None:
    ok(work.reconcile("--apply"))
    snapshot = next((work.cache / "models--org--tiny" / "snapshots").iterdir())
    damage(work.state / DB_FILENAME)
    hub.publish("org/other", {"config.json": b"{}"})
    work.write_manifest([{"name": "other", "repo": "org/other"}])  # tiny is no longer declared

    ok(work.reconcile("--apply"))

    # Without the ownership records, tiny is another tool's as far as modelsync can prove.
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(FILES)
    ok(work.reconcile("adopt", "other"))


def test_status_on_a_damaged_status_file_says_so_in_one_line(work: Workdir) -> None:
    ok(work.reconcile("--apply"))
    work.status_file.write_bytes(b"models: [\x00\xff garbage")

    run = ok(work.reconcile("status"), code=1)

    assert "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1, run.err
    assert "damaged or not a modelsync status file" in run.err
    ok(work.reconcile("--apply"))  # the next pass rewrites it
    assert work.model_status("tiny")["phase"] == "AVAILABLE"
    ok(work.reconcile("status"))


def test_a_damaged_lock_file_is_reported_like_a_manifest_error(work: Workdir) -> None:
    ok(work.reconcile("lock"))
    lock = work.manifests / "models.lock.yaml"
    text = lock.read_bytes()
    lock.write_bytes(text[:40] + b"\xa5\x00" * 8 + text[60:])  # garbage over part of it

    for command in (["--plan"], ["--apply"], ["validate"]):
        run = work.reconcile(*command)
        if command == ["validate"]:
            continue  # validate checks manifests only
        assert run.code == 1, run.out + run.err
        assert "Traceback" not in run.err
        assert re.search(rf"^{re.escape(str(lock))}:[1-9][0-9]*: ", run.err, re.M), run.err

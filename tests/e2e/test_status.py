"""``reconcile status`` shows uses and leases as they are now, not as of the last apply."""

from __future__ import annotations

import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.support.cli import Run, Workdir, reconcile
from tests.support.hub import LocalHub, safetensors_bytes

FILES = {
    "config.json": b'{"model_type": "tiny"}',
    "model.safetensors": safetensors_bytes(b"w" * 4096),
}


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", FILES)
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest([{"name": "tiny", "repo": "org/tiny"}])
    return w


def ok(run: Run, code: int = 0) -> Run:
    assert run.code == code, run.out + run.err
    return run


def row(table: str, name: str) -> list[str]:
    """The table's row of ``name``: NAME PHASE PRIORITY USES/DAY SIZE ..."""
    return next(line.split() for line in table.splitlines() if line.startswith(name + " "))


def test_a_use_shows_in_status_before_the_next_apply(work: Workdir) -> None:
    ok(work.reconcile("--apply"))
    assert row(ok(work.reconcile("status")).out, "tiny")[:4] == ["tiny", "AVAILABLE", "low", "0"]
    before = datetime.now(timezone.utc)
    for seconds in ("2", "4", "6", "8"):
        ok(work.reconcile("use", "tiny", "--generation-seconds", seconds))

    shown = ok(work.reconcile("status", "--json")).json()["models"][0]
    assert shown["usage_frequency"] == pytest.approx(4 / 30, abs=1e-6)
    assert datetime.fromisoformat(shown["last_used"]) >= before
    assert shown["average_generation_seconds"] == 5.0
    assert shown["effective_priority"] == "medium"  # auto, raised by 0.13 uses/day
    assert shown["in_use"] is False
    table = ok(work.reconcile("status")).out
    assert row(table, "tiny")[:4] == ["tiny", "AVAILABLE", "medium", "0.13"]
    # Read, not written: the file still says what the last apply found.
    assert work.model_status("tiny")["usage_frequency"] == 0
    assert work.model_status("tiny")["last_used"] is None


def test_a_model_under_a_lease_shows_in_use(work: Workdir) -> None:
    ok(work.reconcile("--apply"))
    inner = [sys.executable, "-m", "controller", "status", "--json", "-f", str(work.manifests)]
    manifests = str(work.manifests)
    held = ok(reconcile("lease", "-f", manifests, "tiny", "--", *inner, endpoint=work.endpoint))
    assert Run(0, held.out, "").json()["models"][0]["in_use"] is True
    assert ok(work.reconcile("status", "--json")).json()["models"][0]["in_use"] is False


def test_status_file_is_read_live_only_beside_its_state_database(
    work: Workdir, tmp_path: Path
) -> None:
    ok(work.reconcile("use", "tiny"))
    ok(work.reconcile("--apply"))  # the file says 1 use
    copied = tmp_path / "elsewhere" / "status.yaml"  # another machine's file, say
    copied.parent.mkdir()
    shutil.copy(work.status_file, copied)
    ok(work.reconcile("use", "tiny"))
    ok(work.reconcile("use", "tiny"))  # the database says 3

    def uses(status_file: Path) -> float:
        run = ok(reconcile("status", "--status-file", str(status_file), "--json"))
        frequency: float = run.json()["models"][0]["usage_frequency"]
        return frequency

    assert uses(work.status_file) == pytest.approx(3 / 30, abs=1e-6)  # <state>/status.yaml
    assert uses(copied) == pytest.approx(1 / 30, abs=1e-6)  # as written: no database beside


def test_without_a_state_database_status_shows_no_usage(work: Workdir, tmp_path: Path) -> None:
    ok(work.reconcile("use", "tiny"))
    ok(work.reconcile("--apply"))
    assert work.model_status("tiny")["usage_frequency"] > 0
    (work.state / "modelsync.db").rename(tmp_path / "gone.db")  # the state directory wiped
    for side in ("-wal", "-shm"):
        (work.state / f"modelsync.db{side}").unlink(missing_ok=True)
    shown = ok(work.reconcile("status", "--json")).json()["models"][0]
    assert (shown["usage_frequency"], shown["last_used"], shown["in_use"]) == (0, None, False)
    assert not (work.state / "modelsync.db").exists()  # status created nothing

"""The byte budget: which blobs make room, least recently served first, never a busy one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.mirror.budget import STATE_FILE, Held, Ledger, evictions
from controller.mirror.errors import HubError


def _held(*specs: tuple[str, int, float]) -> list[Held]:
    return [Held(key, size, served) for key, size, served in specs]


def test_the_least_recently_served_go_first_until_the_new_file_fits() -> None:
    held = _held(("a", 40, 3.0), ("b", 40, 1.0), ("c", 40, 2.0))
    chosen = evictions(held, set(), limit=100, needed=30)
    assert [h.key for h in chosen or ()] == ["b", "c"]


def test_nothing_is_evicted_when_the_file_fits() -> None:
    assert evictions(_held(("a", 40, 1.0)), set(), limit=100, needed=60) == []


def test_a_busy_blob_is_skipped_for_the_next_oldest() -> None:
    held = _held(("a", 40, 1.0), ("b", 40, 2.0), ("c", 10, 3.0))
    chosen = evictions(held, {"a"}, limit=100, needed=40)
    assert [h.key for h in chosen or ()] == ["b"]


def test_no_room_when_only_busy_blobs_could_make_it() -> None:
    held = _held(("a", 60, 1.0), ("b", 30, 2.0))
    assert evictions(held, {"a"}, limit=100, needed=50) is None


def _blob(root: Path, repo: str, etag: str, size: int) -> Path:
    blob = root / f"models--{repo.replace('/', '--')}" / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"x" * size)
    return blob


def test_a_fill_makes_room_by_deleting_the_blob_and_its_links(tmp_path: Path) -> None:
    old = _blob(tmp_path, "org/m", "a" * 64, 60)
    new = _blob(tmp_path, "org/m", "b" * 64, 0).with_name("c" * 64)
    link = tmp_path / "models--org--m" / "snapshots" / ("1" * 40) / "w.bin"
    link.parent.mkdir(parents=True)
    link.symlink_to(f"../../blobs/{'a' * 64}")
    clock = iter(float(t) for t in range(100, 200))
    ledger = Ledger(tmp_path, 100, lambda: next(clock))
    with ledger.room_for(new, 50):
        assert not old.exists() and not link.is_symlink()
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["version"] == 1


def test_a_file_larger_than_the_budget_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, 100, lambda: 0.0)
    with pytest.raises(HubError) as refused, ledger.room_for(tmp_path / "x", 101):
        pass
    assert refused.value.status == 507


def test_served_times_survive_a_restart(tmp_path: Path) -> None:
    first = _blob(tmp_path, "org/m", "a" * 64, 10)
    second = _blob(tmp_path, "org/m", "b" * 64, 10)
    ledger = Ledger(tmp_path, 100, lambda: 4e9)
    ledger.served(first)
    ledger.save()
    again = Ledger(tmp_path, 15, lambda: 4e9 + 1)
    with again.room_for(tmp_path / "models--org--m" / "blobs" / ("c" * 64), 5):
        pass
    assert first.exists() and not second.exists()  # second: never served, its mtime is older

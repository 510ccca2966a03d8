"""Structural checks of safetensors files, and how verification uses them."""

from __future__ import annotations

import hashlib
import os
import struct
from datetime import datetime, timezone
from pathlib import Path

import pytest

from controller.cache.formats import safetensors_problem
from controller.cache.inspection import inspect
from controller.domain import FileWork
from controller.store import StateStore
from tests.support.hub import safetensors_bytes

GOOD = safetensors_bytes(b"\x07" * 1000)


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    return path


def test_a_valid_file_has_no_problem(tmp_path: Path) -> None:
    assert safetensors_problem(write(tmp_path, GOOD), len(GOOD)) is None


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (GOOD[:5], "shorter than"),
        (GOOD[:-1], "tensors end at byte 1000 of a 999-byte data section"),
        (GOOD + b"x", "of a 1001-byte data section"),
        (struct.pack("<Q", 10**12) + GOOD[8:], "does not fit"),
        (GOOD[:8] + b"\xff" * (len(GOOD) - 8), "unreadable header"),
    ],
)
def test_inconsistent_files_are_named(tmp_path: Path, data: bytes, says: str) -> None:
    problem = safetensors_problem(write(tmp_path, data), len(data))
    assert problem is not None and says in problem


def test_a_trusted_file_overwritten_in_place_is_hashed_after_all(tmp_path: Path) -> None:
    """Same size, inode and mtime (restored by the writer): only the header gives it away."""
    path = write(tmp_path, GOOD)
    f = FileWork("model.safetensors", len(GOOD), hashlib.sha256(GOOD).hexdigest())
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    with StateStore.open(tmp_path / "state") as store:
        assert inspect(store, "org/m", f, path, lambda: now).hashed
        assert not inspect(store, "org/m", f, path, lambda: now).hashed  # trusted now

        st = path.stat()
        with path.open("r+b") as out:
            out.write(b"\x00" * 8)  # the header length: the header no longer parses
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

        found = inspect(store, "org/m", f, path, lambda: now)
    assert found.hashed and not found.ok
    assert "content hashes to" in found.detail

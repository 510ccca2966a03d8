"""Atomic file replacement: readers see old or new content, failures leave no debris."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller.system import atomic
from controller.system.atomic import atomic_write_bytes, atomic_write_text, fsync_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_new_file_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "status.yaml"

    atomic_write_bytes(target, b"phase: AVAILABLE\n")

    assert target.read_bytes() == b"phase: AVAILABLE\n"
    assert _mode(target) == 0o644  # not mkstemp's 0600
    assert os.listdir(target.parent) == ["status.yaml"]


def test_replaces_existing_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "status.yaml"
    target.write_bytes(b"old content that is longer than the new one\n")

    atomic_write_bytes(target, b"new\n")

    assert target.read_bytes() == b"new\n"
    assert os.listdir(tmp_path) == ["status.yaml"]


def test_text_is_encoded_as_utf8_by_default(tmp_path: Path) -> None:
    target = tmp_path / "note.txt"

    atomic_write_text(target, "größe ✓\n")

    assert target.read_bytes() == "größe ✓\n".encode()


def test_explicit_mode_is_applied(tmp_path: Path) -> None:
    target = tmp_path / "secret"

    atomic_write_text(target, "x", mode=0o600)

    assert _mode(target) == 0o600


def test_directory_is_synced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(atomic, "fsync_dir", lambda p: synced.append(Path(p)))

    atomic_write_bytes(tmp_path / "f", b"x")

    assert synced == [tmp_path]


def test_failing_replace_keeps_old_content_and_removes_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "status.yaml"
    target.write_bytes(b"old\n")

    def refuse(src: object, dst: object) -> None:
        raise OSError("simulated rename failure")

    monkeypatch.setattr(os, "replace", refuse)

    with pytest.raises(OSError, match="simulated rename failure"):
        atomic_write_bytes(target, b"new\n")

    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["status.yaml"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_write_keeps_old_content_and_removes_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    target = tmp_path / "status.yaml"
    target.write_bytes(b"old\n")

    def fail(fd: int) -> None:
        raise error

    # fsync runs after the data went to the temp file, before the rename.
    monkeypatch.setattr(os, "fsync", fail)

    with pytest.raises(type(error)):
        atomic_write_bytes(target, b"new\n")

    assert target.read_bytes() == b"old\n"
    assert os.listdir(tmp_path) == ["status.yaml"]


def test_fsync_dir_accepts_a_directory(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    fsync_dir(str(tmp_path))

"""Crash-safe file replacement.

The status file, the lock file and other small documents are rewritten while readers
(a dashboard, ``kubectl cp``, a CI job) may look at them and while the process may be
killed at any instant.  Writing a sibling temp file, syncing it and renaming it over the
target means a reader sees either the old or the new content, never a torn mix, and a
crash leaves at worst an orphaned ``.name.*.tmp`` file instead of a truncated document.
Symbolic links are replaced the same way (a snapshot entry is never missing meanwhile).

Every temp name is ``.<name>.<8 hex digits>.tmp`` (:data:`TEMP_NAME_RE`): it starts with a
dot and does not end in ``.incomplete``, so a reader of the cache takes it neither for
content nor for an interrupted download, and ``reconcile serve`` skips it by that pattern.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TypeAlias

StrPath: TypeAlias = str | os.PathLike[str]

TEMP_NAME_RE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")


def temp_name(target: Path) -> Path:
    """A fresh sibling of ``target`` to write before renaming over it (same directory: a
    rename is only atomic within one file system)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_dir(path: StrPath) -> None:
    """Make a directory's entries (a rename, a new file) durable.

    ``os.replace`` only changes the directory; without syncing it, a power loss can bring
    back the old name after the new content was acknowledged.
    """
    if os.name == "nt":
        # Windows cannot open a directory as a file and NTFS journals renames itself.
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: StrPath, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to fill that replaces ``path`` when the block ends without an exception.

    For content too large to hold in memory (it is streamed into the temp file).  Parent
    directories are created.  On any failure the temp file is removed and the previous
    content of ``path`` (if any) is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    # O_EXCL: never write through a file or link someone else put at that name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with _removed_on_failure(tmp):
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            # Created 0600 so no reader sees it half-written; the intended mode before it shows.
            os.chmod(tmp, mode)
            os.fsync(out.fileno())
        os.replace(tmp, target)
    fsync_dir(target.parent)


def atomic_write_bytes(path: StrPath, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content only."""
    with atomic_writer(path, mode) as out:
        out.write(data)


def atomic_write_text(path: StrPath, text: str, encoding: str = "utf-8", mode: int = 0o644) -> None:
    """Text flavour of :func:`atomic_write_bytes`; encodes up front so nothing is half-written."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode)


def atomic_symlink(target: str, link: Path, *, durable: bool = True) -> None:
    """Point ``link`` at ``target``, replacing whatever ``link`` was in one rename.

    ``durable=False`` leaves syncing the directory to the caller, who may make many links
    durable with one sync of their directory."""
    tmp = temp_name(link)
    os.symlink(target, tmp)
    with _removed_on_failure(tmp):
        os.replace(tmp, link)
    if durable:
        fsync_dir(link.parent)


@contextlib.contextmanager
def _removed_on_failure(tmp: Path) -> Iterator[None]:
    """Remove the temp file ``tmp`` if the block fails, and let the failure go on.

    BaseException too: a KeyboardInterrupt mid-write must not leave temp files around.
    """
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

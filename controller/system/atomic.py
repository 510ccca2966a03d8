"""Crash-safe file replacement.

The status file, the lock file and other small documents are rewritten while readers
(a dashboard, ``kubectl cp``, a CI job) may look at them and while the process may be
killed at any instant.  Writing a sibling temp file, syncing it and renaming it over the
target means a reader sees either the old or the new content, never a torn mix, and a
crash leaves at worst an orphaned ``.name.*.tmp`` file instead of a truncated document.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TypeAlias

StrPath: TypeAlias = str | os.PathLike[str]


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


def atomic_write_bytes(path: StrPath, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content only.

    Parent directories are created.  On any failure the temp file is removed and the
    previous content of ``path`` (if any) is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same directory as the target: a rename is only atomic within one file system.
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix="." + target.name + ".", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            # mkstemp creates 0600; give the file its intended mode before it is visible.
            os.chmod(tmp_name, mode)
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave temp files around.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_dir(target.parent)


def atomic_write_text(path: StrPath, text: str, encoding: str = "utf-8", mode: int = 0o644) -> None:
    """Text flavour of :func:`atomic_write_bytes`; encodes up front so nothing is half-written."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode)

"""huggingface_hub's per-blob lock, taken so that it and modelsync take turns on a blob.

``<cache>/.locks/models--org--name/<etag>.lock`` is the file ``hf_hub_download`` locks while it
writes a blob; writing, publishing or deleting the same blob under the same lock means an
application's download and modelsync's never interleave on one file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.cache import layout

# What huggingface_hub's WeakFileLock uses, so users sharing a cache can wait on each other.
_LOCK_MODE = 0o664


@contextmanager
def blob_lock(cache_dir: Path, repo: str, etag: str) -> Iterator[None]:
    """Hold the blob's lock: an exclusive ``flock`` on its lock file, as filelock (under
    huggingface_hub's WeakFileLock) takes it.  Taken by hand, one open and one blocking
    flock: filelock's registry, fork hooks and polling cost milliseconds of CPU per lock,
    which a first apply of many small models pays once per file."""
    lock_dir = cache_dir / ".locks" / layout.repo_folder(cache_dir, repo).name
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{etag}.lock", os.O_RDWR | os.O_CREAT, _LOCK_MODE)
    try:
        # The umask narrows the mode at creation; another user's lock file is left as is.
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, _LOCK_MODE)
        # Locks are per open file description: two threads of this process, each with its
        # own descriptor, exclude each other as two processes do.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

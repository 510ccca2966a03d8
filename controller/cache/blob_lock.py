"""huggingface_hub's per-blob lock, taken so that it and modelsync take turns on a blob.

``<cache>/.locks/models--org--name/<etag>.lock`` is the file ``hf_hub_download`` locks while it
writes a blob; writing, publishing or deleting the same blob under the same lock means an
application's download and modelsync's never interleave on one file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from controller.cache import layout

# What huggingface_hub's WeakFileLock uses, so users sharing a cache can wait on each other.
_LOCK_MODE = 0o664


@contextmanager
def blob_lock(cache_dir: Path, repo: str, etag: str) -> Iterator[None]:
    lock_path = cache_dir / ".locks" / layout.repo_folder(cache_dir, repo).name / f"{etag}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path, mode=_LOCK_MODE):
        yield

"""Which of a repo folder's refs are tags, recorded beside them.

The cache stores a tag like a branch (``refs/<name>``, what huggingface_hub writes when
asked for either), so without a record a cache served by ``reconcile serve`` would call
``v1.0`` a branch.  The record is :data:`~controller.cache.layout.TAGS_FILE`, a JSON list of
names in the repo folder: huggingface_hub's cache scanner reads only ``blobs/``,
``snapshots/`` and ``refs/`` and passes over any other file there, and the server reads the
record from the folder alone, with no state database beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

from controller.cache import layout
from controller.system.atomic import atomic_write_text


def record(cache_dir: Path, repo: str, name: str, *, is_tag: bool) -> None:
    """Mark ``refs/<name>`` of ``repo`` as a tag, or as not one (a branch by that name)."""
    layout.check_ref_name(name)
    folder = layout.repo_folder(cache_dir, repo)
    tags = layout.read_tags(folder)
    wanted = tags | {name} if is_tag else tags - {name}
    if wanted == tags:
        return  # rewritten only when it changes: two writers rarely meet
    # Atomic, as every record in the cache: a reader sees the old list or the new one.
    atomic_write_text(folder / layout.TAGS_FILE, json.dumps(sorted(wanted)) + "\n")

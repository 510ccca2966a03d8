"""What the upstream listed for a commit, kept in the mirror's directory across restarts.

A commit never changes, so the upstream's listing of one stays true for good.  Kept, a
restarted mirror whose upstream is down still lists a commit whole (every file, also those
it never managed to fetch) rather than as the part its directory holds, which a node would
take for the whole model.

One small JSON document per commit, at ``models--org--name/.modelsync-listings/<commit>.json``:
inside the repo's folder, so removing the repo removes its listings, and beside ``blobs/``,
``refs/`` and ``snapshots/``, which are all that huggingface_hub's ``scan_cache_dir`` (``hf
cache ls``, ``hf cache rm``) reads of a repo folder, so it lists the cache as before.
Written atomically; a listing that cannot be written or read back is as if never listed.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from controller.cache import layout
from controller.cache.hashing import HashKind
from controller.domain import is_commit
from controller.mirror.upstream import Listing, RemoteEntry
from controller.system.atomic import TEMP_NAME_RE, atomic_write_text

LISTINGS_DIR = ".modelsync-listings"
LISTING_VERSION = 1


class Listings:
    """The listings kept under ``root``, one per ``(repo, commit)``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, repo: str, commit: str) -> Path:
        return layout.repo_folder(self.root, repo) / LISTINGS_DIR / f"{commit}.json"

    def save(self, listing: Listing) -> None:
        """Keep ``listing`` unless it is kept already (a commit's listing never changes)."""
        path = self.path(listing.repo, listing.commit)
        if path.is_file():
            return
        with contextlib.suppress(OSError):  # a full or read-only disk must not stop serving
            atomic_write_text(path, _encode(listing))

    def load(self, repo: str, commit: str) -> Listing | None:
        """The kept listing of ``repo@commit``; None when none is kept, or it is unreadable."""
        try:
            document = json.loads(self.path(repo, commit).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return _decode(document, repo, commit)

    def forget(self, repo: str, commit: str) -> None:
        with contextlib.suppress(OSError):
            self.path(repo, commit).unlink()

    def commits(self, repo: str) -> list[str]:
        """The commits of ``repo`` with a kept listing."""
        folder = layout.repo_folder(self.root, repo) / LISTINGS_DIR
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        return sorted(n[: -len(".json")] for n in names if _is_listing_name(n))

    def forget_evicted(self, repo: str, etag: str) -> None:
        """Forget the listings naming ``etag`` whose snapshot now holds no file at all: the
        budget evicted the commit's last file."""
        for commit in self.commits(repo):
            listing = self.load(repo, commit)
            named = listing is None or any(e.etag == etag for e in listing.files.values())
            if named and not _holds_a_file(layout.snapshot_dir(self.root, repo, commit)):
                self.forget(repo, commit)

    def forget_orphans(self) -> None:
        """Forget every listing whose snapshot is gone (removed by another tool meanwhile)."""
        for repo in layout.list_repos(self.root):
            for commit in self.commits(repo):
                if not layout.snapshot_dir(self.root, repo, commit).is_dir():
                    self.forget(repo, commit)


def _is_listing_name(name: str) -> bool:
    return name.endswith(".json") and is_commit(name[: -len(".json")])


def _holds_a_file(snapshot: Path) -> bool:
    for _directory, _dirs, names in os.walk(snapshot):
        if any(not TEMP_NAME_RE.fullmatch(name) for name in names):
            return True
    return False


def _encode(listing: Listing) -> str:
    files = [
        {"path": e.path, "etag": e.etag, "size": e.size}
        for e in sorted(listing.files.values(), key=lambda e: e.path)
    ]
    document = {
        "version": LISTING_VERSION,
        "repo": listing.repo,
        "commit": listing.commit,
        "last_modified": listing.last_modified,
        "files": files,
    }
    return json.dumps(document, sort_keys=True) + "\n"


def _decode(document: Any, repo: str, commit: str) -> Listing | None:
    """The listing ``document`` holds, checked as strictly as the upstream's answer was:
    a document for another commit, or naming an unsafe path or a non-hex etag, is none."""
    if not isinstance(document, dict) or document.get("version") != LISTING_VERSION:
        return None
    if document.get("repo") != repo or document.get("commit") != commit:
        return None
    modified = document.get("last_modified")
    entries = document.get("files")
    if not isinstance(modified, (int, float)) or not isinstance(entries, list):
        return None
    files: dict[str, RemoteEntry] = {}
    for item in entries:
        entry = _decode_entry(item)
        if entry is None:
            return None
        files[entry.path] = entry
    return Listing(repo, commit, files, float(modified))


def _decode_entry(item: Any) -> RemoteEntry | None:
    if not isinstance(item, dict):
        return None
    path, etag, size = item.get("path"), item.get("etag"), item.get("size")
    if not isinstance(path, str) or not isinstance(etag, str) or type(size) is not int:
        return None
    try:
        layout.check_repo_path(path)
    except ValueError:
        return None
    if HashKind.of_blob_name(etag) is None or size < 0:
        return None
    return RemoteEntry(path, etag, size)

"""The upstream's listings of commits, kept in the mirror's directory across restarts."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import scan_cache_dir

from controller.cache import layout
from controller.mirror.listings import Listings
from controller.mirror.upstream import Listing, RemoteEntry

REPO = "acme/kept"
COMMIT = "a" * 40
WEIGHTS = "b" * 64
CONFIG = "c" * 40


def _listing(commit: str = COMMIT) -> Listing:
    files = {
        "config.json": RemoteEntry("config.json", CONFIG, 2),
        "model.safetensors": RemoteEntry("model.safetensors", WEIGHTS, 1024),
    }
    return Listing(REPO, commit, files, 1700000000.0)


def _link(root: Path, commit: str, path: str, etag: str) -> None:
    blob = layout.blob_path(root, REPO, etag)
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"{}")
    link = layout.snapshot_path(root, REPO, commit, path)
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(blob, link.parent), link)


def test_a_kept_listing_reads_back_the_same_in_a_new_store(tmp_path: Path) -> None:
    Listings(tmp_path).save(_listing())
    assert Listings(tmp_path).load(REPO, COMMIT) == _listing()
    assert Listings(tmp_path).load(REPO, "d" * 40) is None


def test_a_damaged_or_foreign_listing_is_as_if_never_kept(tmp_path: Path) -> None:
    store = Listings(tmp_path)
    store.save(_listing())
    path = store.path(REPO, COMMIT)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    assert store.load(REPO, COMMIT) is None
    path.write_text(text.replace('"config.json"', '"../escape"'))
    assert store.load(REPO, COMMIT) is None
    path.write_text(text.replace(COMMIT, "d" * 40))
    assert store.load(REPO, COMMIT) is None


def test_the_cache_scan_lists_the_repo_as_before(tmp_path: Path) -> None:
    _link(tmp_path, COMMIT, "config.json", CONFIG)
    Listings(tmp_path).save(_listing())
    scanned = scan_cache_dir(tmp_path)
    assert scanned.warnings == []
    (repo,) = scanned.repos
    (revision,) = repo.revisions
    assert [f.file_name for f in revision.files] == ["config.json"]


def test_a_listing_goes_when_the_commits_last_file_is_evicted(tmp_path: Path) -> None:
    store = Listings(tmp_path)
    other = "e" * 40
    _link(tmp_path, COMMIT, "config.json", CONFIG)
    store.save(_listing())
    unrelated = {"other.bin": RemoteEntry("other.bin", "f" * 64, 8)}
    store.save(Listing(REPO, other, unrelated, 0.0))  # names no evicted blob
    store.forget_evicted(REPO, WEIGHTS)
    assert store.commits(REPO) == sorted([COMMIT, other])  # COMMIT still holds config.json
    layout.snapshot_path(tmp_path, REPO, COMMIT, "config.json").unlink()
    store.forget_evicted(REPO, CONFIG)
    assert store.commits(REPO) == [other]


def test_a_listing_goes_with_its_snapshot(tmp_path: Path) -> None:
    store = Listings(tmp_path)
    _link(tmp_path, COMMIT, "config.json", CONFIG)
    store.save(_listing())
    store.forget_orphans()
    assert store.commits(REPO) == [COMMIT]
    layout.snapshot_path(tmp_path, REPO, COMMIT, "config.json").unlink()
    layout.snapshot_dir(tmp_path, REPO, COMMIT).rmdir()
    store.forget_orphans()
    assert store.commits(REPO) == []

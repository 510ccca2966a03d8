"""Which partials next to a blob count as a dead writer's: the names and ages that match."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from controller.hub import private_partial

ETAG = "ab" * 32
OTHER = "cd" * 32


def test_only_aged_private_partials_of_the_blob_are_removed(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    aged = [f"{ETAG}.0123abcd.incomplete", f"{ETAG}..incomplete"]
    kept_aged = [
        f"{ETAG}.incomplete",  # the stable partial a ranged download resumes
        f"{OTHER}.0123abcd.incomplete",  # another blob's
        f"{ETAG}.0123abcd.incomplete.bak",
        ETAG,  # the blob itself
    ]
    then = time.time() - private_partial.STALE_AFTER_SECONDS - 60
    for name in aged + kept_aged:
        (blobs / name).write_bytes(b"x")
        os.utime(blobs / name, (then, then))
    (blobs / f"{ETAG}.live.incomplete").write_bytes(b"x")  # written just now

    removed = private_partial.remove_stale(blobs / ETAG, ETAG)

    assert removed == len(aged)
    assert sorted(p.name for p in blobs.iterdir()) == sorted(
        [*kept_aged, f"{ETAG}.live.incomplete"]
    )


def test_a_blob_directory_not_yet_made_has_nothing_to_remove(tmp_path: Path) -> None:
    assert private_partial.remove_stale(tmp_path / "blobs" / ETAG, ETAG) == 0


def test_a_folder_is_listed_again_only_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    partial = blobs / f"{ETAG}.0123abcd.incomplete"
    partial.write_bytes(b"x")
    assert private_partial.remove_stale(blobs / ETAG, ETAG) == 0  # listed: nothing aged

    then = time.time() - private_partial.STALE_AFTER_SECONDS - 60
    os.utime(partial, (then, then))
    # The listing stands for a while: each small file fetched must not list the folder again.
    assert private_partial.remove_stale(blobs / ETAG, ETAG) == 0 and partial.exists()

    monkeypatch.setattr(private_partial, "RELIST_AFTER_SECONDS", -1.0)
    assert private_partial.remove_stale(blobs / ETAG, ETAG) == 1 and not partial.exists()


def test_a_partial_written_again_since_the_listing_is_kept(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    partial = blobs / f"{ETAG}.0123abcd.incomplete"
    partial.write_bytes(b"x")
    then = time.time() - private_partial.STALE_AFTER_SECONDS - 60
    os.utime(partial, (then, then))
    other = blobs / f"{OTHER}.0123abcd.incomplete"
    other.write_bytes(b"x")
    os.utime(other, (then, then))
    assert private_partial.remove_stale(blobs / ETAG, ETAG) == 1  # lists both, removes its own

    os.utime(other, None)  # its writer came back
    assert private_partial.remove_stale(blobs / OTHER, OTHER) == 0 and other.exists()

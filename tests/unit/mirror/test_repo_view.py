"""A revision the mirror has read before is answered again from memory, yet every change of
its snapshot shows in the next answer: files added below, links dropped, blobs deleted, plain
copies edited in place.

Every file and directory is dated an hour back, then each change is made and what it touched
dated a minute later, still long ago: the revision is "settled" again, and only its stamp can
tell the change apart from the remembered answer.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from controller.cache.hashing import HashKind, digest_bytes
from controller.mirror.documents import model_info_document
from controller.mirror.repo_view import Revision, open_repo
from tests.support.repos import publish, repo_folder

REPO = "org/model"
AN_HOUR = 3600
# One instant for every settle(): a stamp may only differ by what the change itself touched.
PAST = time.time() - AN_HOUR


def settle(folder: Path) -> None:
    """Every directory and plain file below ``folder`` last changed an hour ago."""
    past = PAST
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            if not path.is_symlink():
                os.utime(path, (past, past))
        os.utime(directory, (past, past))


def touched(path: Path) -> None:
    """What a change modified, dated a minute after ``settle`` dated everything."""
    os.utime(path, (PAST + 60, PAST + 60), follow_symlinks=False)


def revision(cache: Path) -> Revision:
    view = open_repo(cache.resolve(), REPO)
    assert view is not None
    return view.revision("main")


def served(cache: Path) -> dict[str, str]:
    """What a client is told: path -> blob id, from the model-info document as sent."""
    document = json.loads(model_info_document(revision(cache), blobs=True))
    return {s["rfilename"]: s["blobId"] for s in document["siblings"]}


def published(tmp_path: Path) -> tuple[Path, Path]:
    cache = tmp_path / "hub"
    commit = publish(cache, REPO, {"config.json": b"{}", "sub/a.json": b'{"a": 1}'})
    folder = repo_folder(cache, REPO)
    settle(folder)
    return cache, folder / "snapshots" / commit


def test_a_settled_revision_is_answered_the_same(tmp_path: Path) -> None:
    cache, _ = published(tmp_path)
    first, again = revision(cache), revision(cache)
    assert first == again and first.files == again.files
    assert set(served(cache)) == {"config.json", "sub/a.json"}


def test_a_file_linked_in_a_subdirectory_is_served_next(tmp_path: Path) -> None:
    cache, snapshot = published(tmp_path)
    assert set(served(cache)) == {"config.json", "sub/a.json"}
    target = os.readlink(snapshot / "sub" / "a.json")
    os.symlink(target, snapshot / "sub" / "b.json")
    touched(snapshot / "sub")
    assert set(served(cache)) == {"config.json", "sub/a.json", "sub/b.json"}


def test_a_deleted_blob_is_no_longer_listed(tmp_path: Path) -> None:
    cache, snapshot = published(tmp_path)
    assert "config.json" in served(cache)
    blob = (snapshot / "config.json").resolve()
    blob.unlink()
    touched(blob.parent)
    assert set(served(cache)) == {"sub/a.json"}


def test_a_plain_copy_edited_in_place_is_hashed_again(tmp_path: Path) -> None:
    cache, snapshot = published(tmp_path)
    copy = snapshot / "config.json"
    copy.unlink()
    copy.write_bytes(b"{}")
    settle(snapshot.parents[1])
    assert served(cache)["config.json"] == digest_bytes(b"{}", HashKind.GIT_BLOB_SHA1)
    with copy.open("r+b") as stream:  # same inode, same directory: only the file's stat moves
        stream.write(b"[]")
    touched(copy)
    assert served(cache)["config.json"] == digest_bytes(b"[]", HashKind.GIT_BLOB_SHA1)


def test_a_revision_changed_just_now_is_read_afresh_every_time(tmp_path: Path) -> None:
    cache, snapshot = published(tmp_path)
    (snapshot / "config.json").unlink()  # the snapshot directory changed within the second
    assert set(served(cache)) == {"sub/a.json"}
    assert revision(cache) != revision(cache)  # not remembered: a second change could hide

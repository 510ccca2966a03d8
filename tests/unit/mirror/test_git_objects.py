"""The git ids the mirror reports are the ones git itself computes (checked against git)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from controller.cache.hashing import HashKind, digest_bytes
from controller.mirror.git_objects import blob_id, build_tree, default_lfs_rule, lfs_pointer

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str, stdin: bytes = b"") -> str:
    done = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=True)
    return done.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    return tmp_path


def test_an_lfs_files_blob_id_is_the_git_id_of_its_pointer(repo: Path) -> None:
    content = b"weights" * 1000
    sha256 = hashlib.sha256(content).hexdigest()

    pointer = lfs_pointer(sha256, len(content))

    assert git(repo, "hash-object", "--stdin", stdin=pointer) == blob_id(sha256, len(content))
    assert pointer.startswith(b"version https://git-lfs.github.com/spec/v1\n")


def test_a_file_in_git_is_its_own_blob_id(repo: Path) -> None:
    content = b'{"model_type": "tiny"}'
    etag = digest_bytes(content, HashKind.GIT_BLOB_SHA1)

    assert blob_id(etag, len(content)) == etag == git(repo, "hash-object", "--stdin", stdin=content)


def test_folder_ids_and_entry_order_are_gits(repo: Path) -> None:
    # Names chosen where git's order differs from a plain sort: a folder sorts as "a/",
    # after "a-b" and "a.b" and before "a0"; "a" the folder is not "a" the file.
    contents = {
        "a/x.json": b"1",
        "a/deeper/y.txt": b"2",
        "a-b": b"3",
        "a.b": b"4",
        "a0": b"5",
        "README.md": b"6",
    }
    blob_ids = {
        path: git(repo, "hash-object", "-w", "--stdin", stdin=c) for path, c in contents.items()
    }

    tree = build_tree(blob_ids)

    def mktree(directory: str) -> str:
        lines = []
        for child in tree.children[directory]:
            name = child.rsplit("/", 1)[-1]
            if child in tree.dir_ids:
                lines.append(f"040000 tree {mktree(child)}\t{name}")
            else:
                lines.append(f"100644 blob {blob_ids[child]}\t{name}")
        # git mktree sorts its input itself: the ids agree only if the entries do.
        return git(repo, "mktree", stdin=("\n".join(lines) + "\n").encode())

    root = mktree("")
    assert tree.children[""] == ["README.md", "a-b", "a.b", "a", "a0"]
    assert git(repo, "rev-parse", f"{root}:a") == tree.dir_ids["a"]
    assert git(repo, "rev-parse", f"{root}:a/deeper") == tree.dir_ids["a/deeper"]
    assert list(tree.walk("", recursive=True)) == [
        "README.md",
        "a-b",
        "a.b",
        "a",
        "a/deeper",
        "a/deeper/y.txt",
        "a/x.json",
        "a0",
    ]


def test_the_hubs_default_lfs_rule() -> None:
    assert default_lfs_rule("model.safetensors", 10)  # a weights format, however small
    assert default_lfs_rule("notes.txt", 1024 * 1024)  # big enough
    assert not default_lfs_rule("config.json", 1024 * 1024 - 1)

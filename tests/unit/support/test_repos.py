"""tests.support.repos writes repos in exactly the layout huggingface_hub reads."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir, try_to_load_from_cache

from controller.cache.hashing import CHUNK_SIZE, HashKind, digest_bytes
from controller.cache.layout import read_tags
from controller.domain import COMMIT_RE
from controller.mirror.git_objects import LFS_SIZE_THRESHOLD
from tests.support import repos

REPO = "org/model"
# `printf 'hello\n' | git hash-object --stdin`
HELLO_GIT_SHA1 = "ce013625030ba8dba906f756967f9e9ca394464a"


def _git_blob_sha1(content: bytes) -> str:
    return digest_bytes(content, HashKind.GIT_BLOB_SHA1)


def _folder(cache: Path) -> Path:
    return cache / "models--org--model"


def _files() -> dict[str, bytes | Path]:
    return {
        "config.json": b'{"model_type": "demo"}\n',
        "README.md": b"hello\n",
        "weights/model.safetensors": b"\x00" * 300,
        "tokenizer/sub/vocab.txt": b"a\nb\n",
    }


def test_layout_blobs_snapshots_and_ref(tmp_path: Path) -> None:
    commit = repos.publish(tmp_path, REPO, _files())

    folder = _folder(tmp_path)
    assert COMMIT_RE.fullmatch(commit)
    assert (folder / "refs" / "main").read_bytes() == commit.encode()  # no trailing newline
    snapshot = folder / "snapshots" / commit
    for path, content in _files().items():
        assert (snapshot / path).is_symlink()
        assert (snapshot / path).read_bytes() == content
    assert os.readlink(snapshot / "README.md") == f"../../blobs/{HELLO_GIT_SHA1}"
    sha = hashlib.sha256(b"\x00" * 300).hexdigest()
    assert os.readlink(snapshot / "weights/model.safetensors") == f"../../../blobs/{sha}"
    vocab_link = os.readlink(snapshot / "tokenizer/sub/vocab.txt")
    assert vocab_link.startswith("../../../../blobs/")


def test_etags_follow_the_hub_convention(tmp_path: Path) -> None:
    big = os.urandom(LFS_SIZE_THRESHOLD)
    files: dict[str, bytes | Path] = {"README.md": b"hello\n", "data.txt": big, "m.gguf": b"x"}
    commit = repos.publish(tmp_path, REPO, files)

    snapshot = _folder(tmp_path) / "snapshots" / commit
    names = {p: Path(os.readlink(snapshot / p)).name for p in files}
    assert names["README.md"] == HELLO_GIT_SHA1 == _git_blob_sha1(b"hello\n")
    assert names["data.txt"] == hashlib.sha256(big).hexdigest()  # 1 MiB -> LFS by size
    assert names["m.gguf"] == hashlib.sha256(b"x").hexdigest()  # LFS by extension


def test_custom_lfs_rule(tmp_path: Path) -> None:
    commit = repos.publish(
        tmp_path,
        REPO,
        {"a.bin": b"binary", "b.txt": b"text"},
        lfs=lambda path, size: path == "b.txt",
    )
    snapshot = _folder(tmp_path) / "snapshots" / commit
    assert Path(os.readlink(snapshot / "a.bin")).name == _git_blob_sha1(b"binary")
    assert Path(os.readlink(snapshot / "b.txt")).name == hashlib.sha256(b"text").hexdigest()


def test_commit_is_deterministic(tmp_path: Path) -> None:
    first = repos.publish(tmp_path / "a", REPO, _files(), message="v1")
    again = repos.publish(tmp_path / "b", REPO, _files(), message="v1")
    other_message = repos.publish(tmp_path / "c", REPO, _files(), message="v2")
    on_top = repos.publish(tmp_path / "a", REPO, _files(), message="v1")

    assert first == again
    assert other_message != first
    assert on_top != first  # same tree, but its parent is now `first`


def test_a_publish_is_the_whole_new_tree(tmp_path: Path) -> None:
    v1 = repos.publish(tmp_path, REPO, _files())
    files = _files()
    del files["README.md"]
    files["config.json"] = b"{}"
    v2 = repos.publish(tmp_path, REPO, files)

    folder = _folder(tmp_path)
    assert not (folder / "snapshots" / v2 / "README.md").exists()
    assert (folder / "snapshots" / v1 / "README.md").read_bytes() == b"hello\n"  # history stays
    assert (folder / "refs" / "main").read_text() == v2
    unchanged = "weights/model.safetensors"
    old = os.path.realpath(folder / "snapshots" / v1 / unchanged)
    assert old == os.path.realpath(folder / "snapshots" / v2 / unchanged)  # blob shared


def test_large_path_sources_are_streamed(tmp_path: Path) -> None:
    source = tmp_path / "big.safetensors"
    with source.open("wb") as out:  # sparse: 64 MiB on disk costs nothing
        out.truncate(64 * 1024 * 1024)
    tracemalloc.start()
    try:
        commit = repos.publish(tmp_path / "cache", REPO, {"big.safetensors": source})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 3 * CHUNK_SIZE
    link = _folder(tmp_path / "cache") / "snapshots" / commit / "big.safetensors"
    expected = hashlib.sha256(b"\0" * (64 * 1024 * 1024)).hexdigest()
    assert Path(os.readlink(link)).name == expected
    assert os.path.getsize(link) == 64 * 1024 * 1024
    assert not os.path.samefile(link, source)  # a copy: damaging the blob spares the fixture


def test_path_and_bytes_sources_share_blobs(tmp_path: Path) -> None:
    source = tmp_path / "README.md"
    source.write_bytes(b"hello\n")
    commit = repos.publish(tmp_path / "cache", REPO, {"a.md": source, "b.md": b"hello\n"})
    snapshot = _folder(tmp_path / "cache") / "snapshots" / commit
    assert os.readlink(snapshot / "a.md") == os.readlink(snapshot / "b.md")
    assert [p.name for p in (_folder(tmp_path / "cache") / "blobs").iterdir()] == [HELLO_GIT_SHA1]


def test_huggingface_hub_reads_the_seeded_cache(tmp_path: Path) -> None:
    commit = repos.publish(tmp_path, REPO, _files())
    repos.tag(tmp_path, REPO, "v1.0", commit)

    report = scan_cache_dir(tmp_path)
    assert report.warnings == []
    (repo,) = report.repos
    assert repo.repo_id == REPO
    (revision,) = repo.revisions
    assert revision.commit_hash == commit
    assert revision.refs == frozenset({"main", "v1.0"})
    assert revision.nb_files == len(_files())

    cached = hf_hub_download(
        REPO, "tokenizer/sub/vocab.txt", cache_dir=tmp_path, local_files_only=True
    )
    assert Path(cached).read_bytes() == b"a\nb\n"
    by_tag = try_to_load_from_cache(REPO, "config.json", cache_dir=tmp_path, revision="v1.0")
    assert isinstance(by_tag, str) and Path(by_tag).read_bytes() == _files()["config.json"]


def test_branches_tags_and_pull_requests(tmp_path: Path) -> None:
    v1 = repos.publish(tmp_path, REPO, {"a": b"1"})
    v2 = repos.publish(tmp_path, REPO, {"a": b"2"})
    pr = repos.publish(tmp_path, REPO, {"a": b"3"}, branch="refs/pr/1")
    repos.move_branch(tmp_path, REPO, "main", v1)
    repos.move_branch(tmp_path, REPO, "dev", v2)
    repos.tag(tmp_path, REPO, "v1", v1)

    folder = _folder(tmp_path)
    assert repos.read_ref(tmp_path, REPO, "main") == v1
    assert repos.read_ref(tmp_path, REPO, "dev") == v2
    assert (folder / "refs" / "refs" / "pr" / "1").read_text() == pr  # nests like the client's
    assert read_tags(folder) == {"v1"}

    repos.delete_branch(tmp_path, REPO, "refs/pr/1")
    assert not (folder / "refs" / "refs").exists()  # no empty directories left behind
    assert (folder / "snapshots" / pr).is_dir()  # the cache keeps what it had
    repos.delete_tag(tmp_path, REPO, "v1")
    assert read_tags(folder) == frozenset()
    assert repos.read_ref(tmp_path, REPO, "v1") is None


def test_ref_helpers_refuse_mistakes(tmp_path: Path) -> None:
    commit = repos.publish(tmp_path, REPO, {"a": b"1"})
    repos.tag(tmp_path, REPO, "v1", commit)

    with pytest.raises(ValueError, match="unknown commit"):
        repos.move_branch(tmp_path, REPO, "main", "0" * 40)
    with pytest.raises(ValueError, match="is a tag"):
        repos.move_branch(tmp_path, REPO, "v1", commit)
    with pytest.raises(ValueError, match="is a tag"):
        repos.publish(tmp_path, REPO, {"a": b"2"}, branch="v1")
    with pytest.raises(ValueError, match="already a branch"):
        repos.tag(tmp_path, REPO, "main", commit)
    with pytest.raises(FileNotFoundError):
        repos.delete_branch(tmp_path, REPO, "nope")


@pytest.mark.parametrize("path", ["../escape", "/abs", "a//b", "a/./b", "a\\b", "", "dir/"])
def test_unsafe_paths_are_rejected(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError):
        repos.publish(tmp_path, REPO, {path: b"x"})
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("repo_id", ["a/b/c", "../x", "org/..", "org/a--b", "", "org/"])
def test_unsafe_repo_ids_are_rejected(tmp_path: Path, repo_id: str) -> None:
    with pytest.raises(ValueError):
        repos.publish(tmp_path, repo_id, {"a": b"x"})


@pytest.mark.parametrize("branch", ["../main", "refs/../x", ".hidden", "a//b"])
def test_unsafe_branch_names_are_rejected(tmp_path: Path, branch: str) -> None:
    with pytest.raises(ValueError):
        repos.publish(tmp_path, REPO, {"a": b"x"}, branch=branch)


def test_a_path_cannot_be_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both as file and directory"):
        repos.publish(tmp_path, REPO, {"a": b"x", "a/b": b"y"})


def test_no_temporary_files_are_left(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    commit = repos.publish(tmp_path / "cache", REPO, {**_files(), "src.bin": source})
    repos.tag(tmp_path / "cache", REPO, "v1", commit)

    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []

"""Write model repositories straight into a Hugging Face cache directory.

The local hub (``reconcile serve``, :mod:`controller.mirror`) serves a cache directory, and
the tests, the benchmarks and the offline quickstart need repositories in it without any
network.  This module builds them in exactly the layout ``huggingface_hub`` itself writes, so
the same directory also works as a client cache (``local_files_only=True``) and
``scan_cache_dir`` sees nothing unusual::

    models--org--name/
      blobs/<etag>                       sha256 for LFS files, git blob sha1 otherwise
      snapshots/<commit>/<path>          relative symlink -> ../../blobs/<etag>
      refs/<branch>                      the commit, no trailing newline
      .modelsync-tags                    names in refs/ that are tags (the mirror reads it)

Every name, digest, ref and write is the product's own (:mod:`controller.cache.layout`,
:mod:`controller.cache.hashing`, :mod:`controller.mirror.git_objects`,
:mod:`controller.system.atomic`): what is published here is what the mirror and the
controller read, by construction.  Only the commit ids are this module's: a cache holds no
commit objects, so a commit is named by a digest of its tree, its parent and its message.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from huggingface_hub.utils import validate_repo_id

from controller.cache import layout
from controller.cache.hashing import CHUNK_SIZE, HashKind, digest_bytes, digest_file
from controller.domain import is_commit
from controller.mirror.git_objects import LfsRule, default_lfs_rule
from controller.system.atomic import atomic_symlink, atomic_write_bytes, atomic_writer


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """The folder of ``repo_id``, an id the Hub accepts (``ValueError`` for any other)."""
    validate_repo_id(repo_id)
    return layout.repo_folder(Path(cache_dir), repo_id)


def publish(
    cache_dir: Path,
    repo_id: str,
    files: Mapping[str, bytes | Path],
    *,
    branch: str = "main",
    message: str = "",
    lfs: LfsRule | None = None,
) -> str:
    """Commit ``files`` as the whole new tree of ``branch`` and return the commit id.

    Files absent from ``files`` are absent from the new revision; earlier snapshots and
    their blobs stay, as they would in a client cache after a branch moved.  A ``Path``
    source is streamed, so a multi-gigabyte fixture never sits in memory.
    """
    folder = repo_folder(cache_dir, repo_id)
    layout.check_ref_name(branch)
    _check_tree(files)
    _refuse_tag(folder, branch)
    rule = lfs or default_lfs_rule
    etags = {
        path: _store_blob(folder / "blobs", path, source, rule) for path, source in files.items()
    }
    commit = commit_id(layout.read_ref(folder / "refs" / branch), etags, message)
    _write_snapshot(folder / "snapshots" / commit, etags)
    _write_ref(folder, branch, commit)
    return commit


def commit_id(parent: str | None, etags: Mapping[str, str], message: str) -> str:
    """Deterministic, so re-publishing the same tree on the same parent is a no-op."""
    payload = {"parent": parent or "", "files": sorted(etags.items()), "message": message}
    encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha1(encoded).hexdigest()


def move_branch(cache_dir: Path, repo_id: str, branch: str, commit: str) -> None:
    """Point ``branch`` at an existing commit (creating the branch if needed)."""
    folder = repo_folder(cache_dir, repo_id)
    layout.check_ref_name(branch)
    _refuse_tag(folder, branch)
    _require_snapshot(folder, commit)
    _write_ref(folder, branch, commit)


def tag(cache_dir: Path, repo_id: str, tag: str, commit: str) -> None:
    """Create or move tag ``tag``; stored in ``refs/<tag>`` like the client stores it."""
    folder = repo_folder(cache_dir, repo_id)
    layout.check_ref_name(tag)
    _require_snapshot(folder, commit)
    tags = layout.read_tags(folder)
    if tag not in tags and (folder / "refs" / tag).exists():
        raise ValueError(f"{tag!r} is already a branch of {repo_id}")
    _write_tags(folder, tags | {tag})
    _write_ref(folder, tag, commit)


def delete_branch(cache_dir: Path, repo_id: str, branch: str) -> None:
    """Remove the ref; snapshots and blobs stay (a cache keeps what it downloaded)."""
    folder = repo_folder(cache_dir, repo_id)
    layout.check_ref_name(branch)
    _refuse_tag(folder, branch)
    _remove_ref(folder, branch)


def delete_tag(cache_dir: Path, repo_id: str, tag: str) -> None:
    folder = repo_folder(cache_dir, repo_id)
    layout.check_ref_name(tag)
    tags = layout.read_tags(folder)
    if tag not in tags:
        raise FileNotFoundError(f"no tag {tag!r} in {repo_id}")
    _remove_ref(folder, tag)
    _write_tags(folder, tags - {tag})


def read_ref(cache_dir: Path, repo_id: str, name: str) -> str | None:
    return layout.read_ref(repo_folder(cache_dir, repo_id) / "refs" / layout.check_ref_name(name))


# --- helpers ---------------------------------------------------------------------------------


def _check_tree(files: Mapping[str, bytes | Path]) -> None:
    """Reject paths that escape, and a path that is both a file and a directory."""
    directories: set[str] = set()
    for path in files:
        layout.check_repo_path(path)
        parts = path.split("/")
        directories.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clashes = sorted(directories.intersection(files))
    if clashes:
        raise ValueError(f"paths used both as file and directory: {clashes}")


def _kind(is_lfs: bool) -> HashKind:
    return HashKind.SHA256 if is_lfs else HashKind.GIT_BLOB_SHA1


def _store_blob(blobs: Path, path: str, source: bytes | Path, rule: LfsRule) -> str:
    """Add the content to ``blobs/`` (once per distinct content) and return its etag."""
    if isinstance(source, bytes):
        etag = digest_bytes(source, _kind(rule(path, len(source))))
        if not (blobs / etag).exists():
            atomic_write_bytes(blobs / etag, source)
        return etag
    before = source.stat()
    etag = digest_file(source, _kind(rule(path, before.st_size)))
    _check_unchanged(source, before)
    if not (blobs / etag).exists():
        with atomic_writer(blobs / etag) as out, source.open("rb") as stream:
            shutil.copyfileobj(stream, out, CHUNK_SIZE)
            _check_unchanged(source, before)  # raising here discards the temp copy
    return etag


def _check_unchanged(source: Path, before: os.stat_result) -> None:
    """Hashing and copying are separate passes: a file edited in between must not land
    under a name that no longer matches its content. Cheaper than hashing twice."""
    after = source.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise RuntimeError(f"{source} changed while being published")


def _write_snapshot(snapshot: Path, etags: Mapping[str, str]) -> None:
    for path, etag in etags.items():
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        # From snapshots/<commit>/<a>/<b> up to the repo folder: one '../' per part, plus one.
        atomic_symlink("../" * (len(path.split("/")) + 1) + f"blobs/{etag}", link)


def _write_ref(folder: Path, name: str, commit: str) -> None:
    atomic_write_bytes(folder / "refs" / name, commit.encode("ascii"))


def _remove_ref(folder: Path, name: str) -> None:
    refs = folder / "refs"
    (refs / name).unlink()  # FileNotFoundError is the right answer for a missing ref
    parent = (refs / name).parent
    while parent != refs and not any(parent.iterdir()):
        parent.rmdir()  # leave no empty refs/refs/pr/ behind
        parent = parent.parent


def _write_tags(folder: Path, names: frozenset[str]) -> None:
    atomic_write_bytes(folder / layout.TAGS_FILE, json.dumps(sorted(names)).encode())


def _refuse_tag(folder: Path, name: str) -> None:
    if name in layout.read_tags(folder):
        raise ValueError(f"{name!r} is a tag, not a branch")


def _require_snapshot(folder: Path, commit: str) -> None:
    if not is_commit(commit) or not (folder / "snapshots" / commit).is_dir():
        raise ValueError(f"unknown commit {commit!r} in {folder.name}")

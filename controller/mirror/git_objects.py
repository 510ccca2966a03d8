"""The git and Git LFS objects the hub's answers name, derived from what a cache holds.

A cache keeps each file's content under its etag (the sha256 of an LFS file, the git blob
sha1 of any other).  The hub also reports what git itself stores: for an LFS file the pointer
text and that pointer's git blob id, and for a folder its git tree id.  These are computed
here exactly as git computes them, so an ``oid`` means what it means on the Hub.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from controller.cache.hashing import HashKind, digest_bytes

LFS_SIZE_THRESHOLD = 1024 * 1024
# The weight and archive formats the Hub's default .gitattributes sends to LFS.
LFS_EXTENSIONS = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack"}
    | {".h5", ".npz", ".model", ".pkl", ".zip", ".tar", ".gz"}
)

# Whether a repo stores the file at a path, of a size, in LFS.
LfsRule = Callable[[str, int], bool]


def default_lfs_rule(path: str, size: int) -> bool:
    """The Hub's default .gitattributes: big files and weight formats go to LFS."""
    return size >= LFS_SIZE_THRESHOLD or PurePosixPath(path).suffix.lower() in LFS_EXTENSIONS


def is_lfs_etag(etag: str) -> bool:
    """An LFS file's etag is its sha256; a file kept in git has its git blob sha1."""
    return HashKind.of_blob_name(etag) is HashKind.SHA256


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer git stores for an LFS file; its git blob sha1 is the file's ``blobId``."""
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    return text.encode()


def blob_id(etag: str, size: int) -> str:
    """Git's id for what the repo stores: the pointer for an LFS file, else the content."""
    if is_lfs_etag(etag):
        return digest_bytes(lfs_pointer(etag, size), HashKind.GIT_BLOB_SHA1)
    return etag


@dataclass(frozen=True)
class GitTree:
    """Directory structure of a revision, in git's entry order."""

    children: Mapping[str, Sequence[str]]  # directory ("" = root) -> child paths
    dir_ids: Mapping[str, str]  # directory -> git tree id

    def walk(self, base: str, recursive: bool) -> Iterator[str]:
        for child in self.children.get(base, ()):
            yield child
            if recursive and child in self.dir_ids:
                yield from self.walk(child, recursive)


def build_tree(blob_ids: Mapping[str, str]) -> GitTree:
    """The folders of a revision whose files (path -> git blob id) are ``blob_ids``."""
    members: dict[str, dict[str, str | None]] = {"": {}}  # dir -> name -> blob id (None: dir)
    for path, blob in blob_ids.items():
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            parent = "/".join(parts[:depth])
            members.setdefault(parent, {})[parts[depth]] = None
            members.setdefault("/".join(parts[: depth + 1]), {})
        members["/".join(parts[:-1])][parts[-1]] = blob
    dir_ids: dict[str, str] = {}
    # Deepest first, so every subdirectory's id exists before its parent needs it.
    for directory in sorted(members, key=_depth, reverse=True):
        dir_ids[directory] = _git_tree_id(directory, members[directory], dir_ids)
    children = {d: [_join(d, n) for n in _git_order(m)] for d, m in members.items()}
    dir_ids.pop("")
    return GitTree(children, dir_ids)


def _depth(directory: str) -> int:
    return directory.count("/") + 1 if directory else 0


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _git_order(members: Mapping[str, str | None]) -> list[str]:
    """Git sorts tree entries by name, comparing a directory as if it ended in '/'."""
    return sorted(members, key=lambda n: n.encode() + (b"/" if members[n] is None else b""))


def _git_tree_id(directory: str, members: Mapping[str, str | None], ids: Mapping[str, str]) -> str:
    """The real git tree id: sha1 of ``tree <size>\\0`` and the entries in git's order."""
    records = []
    for name in _git_order(members):
        blob = members[name]
        mode, oid = (b"40000", ids[_join(directory, name)]) if blob is None else (b"100644", blob)
        records.append(mode + b" " + name.encode() + b"\0" + bytes.fromhex(oid))
    body = b"".join(records)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()

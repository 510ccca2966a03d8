"""Write model repositories straight into a Hugging Face cache directory.

The local hub (``controller.mirror.server``) serves a cache directory, and the tests and the
offline quickstart need repositories in it without any network. This module builds
them in exactly the layout ``huggingface_hub`` itself writes, so the same directory
also works as a client cache (``local_files_only=True``) and ``scan_cache_dir`` sees
nothing unusual::

    models--org--name/
      blobs/<etag>                       sha256 for LFS files, git blob sha1 otherwise
      snapshots/<commit>/<path>          relative symlink -> ../../blobs/<etag>
      refs/<branch>                      the commit, no trailing newline
      .modelsync-tags                    names in refs/ that are tags (our only addition)

The cache layout cannot tell a tag from a branch (both live in ``refs/<name>``, which
is what the client writes when asked for either), so tag names are recorded in a
small sidecar that ``scan_cache_dir`` ignores and the server reads for ``/refs``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

CHUNK_SIZE = 8 * 1024 * 1024
LFS_SIZE_THRESHOLD = 1024 * 1024
# The weight and archive formats HF's default .gitattributes sends to LFS.
LFS_EXTENSIONS = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack"}
    | {".h5", ".npz", ".model", ".pkl", ".zip", ".tar", ".gz"}
)
TAGS_FILE = ".modelsync-tags"
REPO_FOLDER_PREFIX = "models--"

COMMIT_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Hub repo names: letters, digits, '.', '_', '-'; never '--' or '..' (the cache layout
# uses '--' as the separator, and '..' would be a path escape).
_REPO_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")

LfsRule = Callable[[str, int], bool]


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


# --- naming rules shared with the server -------------------------------------------------


def default_lfs_rule(path: str, size: int) -> bool:
    """Mirror the Hub's default .gitattributes: big files and weight formats go to LFS."""
    return size >= LFS_SIZE_THRESHOLD or PurePosixPath(path).suffix.lower() in LFS_EXTENSIONS


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, which is the Hub's etag for a regular file."""
    return _digest(False, content)


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer git stores for an LFS file; its git sha1 is the file's ``blobId``."""
    text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    return text.encode()


def is_lfs_etag(etag: str) -> bool:
    return bool(SHA256_RE.fullmatch(etag))


def is_git_etag(etag: str) -> bool:
    return bool(COMMIT_RE.fullmatch(etag))


def validate_repo_id(repo_id: str) -> str:
    """Accept ``org/name`` or ``name``; anything else could escape or collide in the cache."""
    parts = repo_id.split("/")
    if not 1 <= len(parts) <= 2 or not all(_is_repo_part(p) for p in parts):
        raise ValueError(f"invalid repo id {repo_id!r}: expected 'org/name'")
    return repo_id


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    return Path(cache_dir) / (REPO_FOLDER_PREFIX + validate_repo_id(repo_id).replace("/", "--"))


def validate_repo_path(path: str) -> str:
    """A file path inside a repo: relative, '/'-separated, no empty, '.' or '..' parts."""
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise ValueError(f"invalid path in repo: {path!r}")
    return path


def validate_ref_name(name: str) -> str:
    """Ref names may nest (``refs/pr/1``) but must stay inside ``refs/``."""
    try:
        validate_repo_path(name)
    except ValueError:
        raise ValueError(f"invalid ref name: {name!r}") from None
    if any(p.startswith(".") for p in name.split("/")):
        # Leading dots are git-invalid and are how we name temporary files.
        raise ValueError(f"invalid ref name: {name!r}")
    return name


def read_tags(folder: Path) -> frozenset[str]:
    """Names under ``refs/`` that were created as tags (see module docstring)."""
    try:
        names = json.loads((folder / TAGS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return frozenset()
    return frozenset(str(n) for n in names)


# --- publishing ------------------------------------------------------------------------------


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
    their blobs stay, as they would in a client cache after a branch moved.
    """
    folder = repo_folder(cache_dir, repo_id)
    validate_ref_name(branch)
    _check_tree(files)
    _refuse_tag(folder, branch)
    rule = lfs or default_lfs_rule
    blobs = folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    etags = {path: _store_blob(blobs, path, source, rule) for path, source in files.items()}
    commit = commit_id(_read_ref(folder, branch), etags, message)
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
    validate_ref_name(branch)
    _refuse_tag(folder, branch)
    _require_snapshot(folder, commit)
    _write_ref(folder, branch, commit)


def tag(cache_dir: Path, repo_id: str, tag: str, commit: str) -> None:
    """Create or move tag ``tag``; stored in ``refs/<tag>`` like the client stores it."""
    folder = repo_folder(cache_dir, repo_id)
    validate_ref_name(tag)
    _require_snapshot(folder, commit)
    if tag not in read_tags(folder) and (folder / "refs" / tag).exists():
        raise ValueError(f"{tag!r} is already a branch of {repo_id}")
    _write_tags(folder, read_tags(folder) | {tag})
    _write_ref(folder, tag, commit)


def delete_branch(cache_dir: Path, repo_id: str, branch: str) -> None:
    """Remove the ref; snapshots and blobs stay (a cache keeps what it downloaded)."""
    folder = repo_folder(cache_dir, repo_id)
    validate_ref_name(branch)
    _refuse_tag(folder, branch)
    _remove_ref(folder, branch)


def delete_tag(cache_dir: Path, repo_id: str, tag: str) -> None:
    folder = repo_folder(cache_dir, repo_id)
    validate_ref_name(tag)
    if tag not in read_tags(folder):
        raise FileNotFoundError(f"no tag {tag!r} in {repo_id}")
    _remove_ref(folder, tag)
    _write_tags(folder, read_tags(folder) - {tag})


def read_ref(cache_dir: Path, repo_id: str, name: str) -> str | None:
    return _read_ref(repo_folder(cache_dir, repo_id), validate_ref_name(name))


# --- helpers ---------------------------------------------------------------------------------


def _is_repo_part(part: str) -> bool:
    return bool(_REPO_PART_RE.fullmatch(part)) and "--" not in part and ".." not in part


def _check_tree(files: Mapping[str, bytes | Path]) -> None:
    """Reject paths that escape, and a path that is both a file and a directory."""
    directories: set[str] = set()
    for path in files:
        validate_repo_path(path)
        parts = path.split("/")
        directories.update("/".join(parts[:i]) for i in range(1, len(parts)))
    clashes = sorted(directories.intersection(files))
    if clashes:
        raise ValueError(f"paths used both as file and directory: {clashes}")


def _new_hasher(is_lfs: bool, size: int) -> _Hasher:
    if is_lfs:
        return hashlib.sha256()
    hasher = hashlib.sha1()
    hasher.update(b"blob %d\0" % size)  # git hashes a header before the content
    return hasher


def _digest(is_lfs: bool, content: bytes) -> str:
    hasher = _new_hasher(is_lfs, len(content))
    hasher.update(content)
    return hasher.hexdigest()


def _iter_chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            yield chunk


def hash_file(path: Path, is_lfs: bool, size: int) -> str:
    """Stream the file so a multi-gigabyte fixture never sits in memory."""
    hasher = _new_hasher(is_lfs, size)
    seen = 0
    for chunk in _iter_chunks(path):
        hasher.update(chunk)
        seen += len(chunk)
    _check_size(path, size, seen)
    return hasher.hexdigest()


def _check_size(path: Path, expected: int, seen: int) -> None:
    if seen != expected:
        raise RuntimeError(f"{path} changed size while being published ({expected} -> {seen})")


def _store_blob(blobs: Path, path: str, source: bytes | Path, rule: LfsRule) -> str:
    """Add the content to ``blobs/`` (once per distinct content) and return its etag."""
    if isinstance(source, bytes):
        etag = _digest(rule(path, len(source)), source)
        if not (blobs / etag).exists():
            _write_atomically(blobs / etag, _writer(source))
        return etag
    before = source.stat()
    is_lfs = rule(path, before.st_size)
    etag = hash_file(source, is_lfs, before.st_size)
    _check_unchanged(source, before)
    if not (blobs / etag).exists():
        _write_atomically(blobs / etag, lambda out: _copy_unchanged(source, out, before))
    return etag


def _copy_unchanged(source: Path, out: _Writable, before: os.stat_result) -> None:
    with source.open("rb") as stream:
        shutil.copyfileobj(stream, out, CHUNK_SIZE)
    _check_unchanged(source, before)  # raising here discards the temp copy


def _check_unchanged(source: Path, before: os.stat_result) -> None:
    """Hashing and copying are separate passes: a file edited in between must not land
    under a name that no longer matches its content. Cheaper than hashing twice."""
    after = source.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise RuntimeError(f"{source} changed while being published")


def _write_atomically(target: Path, fill: Callable[[_Writable], None]) -> None:
    """Write a sibling temp file and rename it, so readers never see a partial file.

    The temp name starts with '.' and does not end in '.incomplete', so neither the
    server nor ``scan_cache_dir`` mistakes it for content or an interrupted download.
    ``os.open`` with 0o666 lets the umask decide the mode, as the client's blobs do.
    """
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _writer(data: bytes) -> Callable[[_Writable], None]:
    def fill(out: _Writable) -> None:
        out.write(data)

    return fill


def _write_snapshot(snapshot: Path, etags: Mapping[str, str]) -> None:
    snapshot.mkdir(parents=True, exist_ok=True)
    for path, etag in etags.items():
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        # From snapshots/<commit>/<a>/<b> up to the repo folder: one '../' per part, plus one.
        target = "../" * (len(path.split("/")) + 1) + f"blobs/{etag}"
        _symlink_atomically(target, link)


def _symlink_atomically(target: str, link: Path) -> None:
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    finally:
        tmp.unlink(missing_ok=True)


def _read_ref(folder: Path, name: str) -> str | None:
    try:
        return (folder / "refs" / name).read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_ref(folder: Path, name: str, commit: str) -> None:
    ref = folder / "refs" / name
    ref.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(ref, _writer(commit.encode("ascii")))


def _remove_ref(folder: Path, name: str) -> None:
    refs = folder / "refs"
    (refs / name).unlink()  # FileNotFoundError is the right answer for a missing ref
    parent = (refs / name).parent
    while parent != refs and not any(parent.iterdir()):
        parent.rmdir()  # leave no empty refs/refs/pr/ behind
        parent = parent.parent


def _write_tags(folder: Path, names: frozenset[str]) -> None:
    _write_atomically(folder / TAGS_FILE, _writer(json.dumps(sorted(names)).encode()))


def _refuse_tag(folder: Path, name: str) -> None:
    if name in read_tags(folder):
        raise ValueError(f"{name!r} is a tag, not a branch")


def _require_snapshot(folder: Path, commit: str) -> None:
    if not COMMIT_RE.fullmatch(commit) or not (folder / "snapshots" / commit).is_dir():
        raise ValueError(f"unknown commit {commit!r} in {folder.name}")

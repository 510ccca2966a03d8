"""The hub's answer about a revision (``GET /api/models/{repo}/revision/{rev}?blobs=true``),
checked field by field before anything is built on it.

huggingface_hub's ``ModelInfo`` takes whatever JSON arrives: a missing ``siblings`` becomes an
empty revision (which would then be "complete" with no file), a string where a list belongs
raises a ``TypeError`` deep inside it, and a negative size or a malformed sha256 pass
unnoticed until a transfer trips over them.  Every file name, size and digest here becomes a
path, a byte count or a blob name in the cache, so each is checked, and a bad answer is one
:class:`MalformedAnswer` that says which field of which file was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from controller.cache.layout import check_relative
from controller.domain import COMMIT_RE, SHA256_RE, RemoteFile, RemoteRevision

_BLOB_ID_RE = re.compile(r"[0-9a-f]{40}")  # a git blob sha1, in hex


class MalformedAnswer(ValueError):
    """The hub's JSON does not describe a revision; the message names the field."""


def parse_revision(repo: str, revision: str, document: object) -> RemoteRevision:
    """``document`` (decoded JSON) as the revision it describes, or :class:`MalformedAnswer`.

    Raises :class:`~controller.cache.layout.UnsafePathError` for a file name that would
    leave the snapshot, which is refused with its own reason.
    """
    if not isinstance(document, Mapping):
        raise MalformedAnswer(f"the answer is a JSON {_kind(document)}, not an object")
    sha = document.get("sha")
    if not isinstance(sha, str) or not COMMIT_RE.match(sha):
        # The commit names a directory of the cache: only a plain 40-hex id is accepted.
        raise MalformedAnswer(f"'sha' is {_shown(sha)}, not a 40-hex commit id")
    siblings = document.get("siblings")
    if not isinstance(siblings, list):
        raise MalformedAnswer(f"'siblings' is {_shown(siblings)}, not a list of files")
    files = tuple(_remote_file(i, sibling) for i, sibling in enumerate(siblings))
    return RemoteRevision(repo=repo, revision=revision, commit=sha, files=files)


def _remote_file(index: int, sibling: object) -> RemoteFile:
    # The happy path builds no message: it runs for every file of every answer of a pass.
    # JSON decodes to dicts: asked first, the abstract Mapping check is rarely reached.
    if type(sibling) is not dict and not isinstance(sibling, Mapping):
        raise MalformedAnswer(f"siblings[{index}] is {_shown(sibling)}, not an object")
    path = sibling.get("rfilename")
    if not isinstance(path, str):
        raise MalformedAnswer(f"siblings[{index}].rfilename is {_shown(path)}, not a file name")
    check_relative(path)
    lfs = sibling.get("lfs")
    sha256: str | None = None
    lfs_size: int | None = None
    if lfs is not None:
        if type(lfs) is not dict and not isinstance(lfs, Mapping):
            raise MalformedAnswer(f"{_where(index, path)}.lfs is {_shown(lfs)}, not an object")
        digest = lfs.get("sha256")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            shown = _shown(digest)
            raise MalformedAnswer(f"{_where(index, path)}.lfs.sha256 is {shown}, not a sha256")
        sha256 = digest
        lfs_size = _size(index, path, ".lfs.size", lfs.get("size"), required=False)
    size = _size(index, path, ".size", sibling.get("size"), required=lfs_size is None)
    if size is not None and lfs_size is not None and size != lfs_size:
        raise MalformedAnswer(f"{_where(index, path)}: size {size} but lfs.size {lfs_size}")
    blob_id = sibling.get("blobId", "")
    if not isinstance(blob_id, str) or (blob_id and not _BLOB_ID_RE.fullmatch(blob_id)):
        shown = _shown(blob_id)
        raise MalformedAnswer(f"{_where(index, path)}.blobId is {shown}, not a git blob id")
    if sha256 is None and not blob_id:
        raise MalformedAnswer(
            f"{_where(index, path)} has neither lfs.sha256 nor blobId to check it by"
        )
    final_size = size if size is not None else lfs_size
    assert final_size is not None  # _size required one of them
    return RemoteFile(path=path, size=final_size, blob_id=blob_id, sha256=sha256)


def _where(index: int, path: str) -> str:
    return f"siblings[{index}] ({path})"


def _size(index: int, path: str, field: str, value: object, *, required: bool) -> int | None:
    if value is None and not required:
        return None
    # bool is an int to Python, never a size to the hub.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        shown = _shown(value)
        raise MalformedAnswer(f"{_where(index, path)}{field} is {shown}, not a size in bytes")
    return value


def _kind(value: object) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _shown(value: object) -> str:
    """The offending value, short: a hostile hub must not fill the status with its bytes."""
    return "missing" if value is None else f"{value!r:.60}"

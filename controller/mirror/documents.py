"""The Hub's JSON documents, built from a repo of the served cache.

What a cache cannot know is invented conservatively: there is one author (the org), no card
data, no downloads or likes, and ``lastModified`` is the snapshot's mtime.  A revision's
history is its own commit, then the cache's other commits (see :meth:`RepoView.history`),
with no titles.
Xet is never advertised, so clients always download over plain HTTP ranges.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from typing import cast

from controller.mirror.git_objects import GitTree
from controller.mirror.repo_view import FileEntry, RepoView, Revision

JsonObject = dict[str, object]

# ``/api/agent-harnesses``, which huggingface_hub asks for: this hub knows of none.
EMPTY_REGISTRY: JsonObject = {"standardEnvVars": [], "harnesses": {}}


# Encoded model-info documents kept, keyed by revision (and its stamp) and the query: the
# answer every node asks of a mirror every pass, the same until the snapshot changes.
DOCUMENT_CACHE_SIZE = 2048


def model_info_document(rev: Revision, blobs: bool) -> bytes:
    """``model_info_json`` encoded as sent; built once per settled revision and query."""
    if rev.stamp is None:
        return encode(model_info_json(rev, blobs))
    return _settled_model_info(rev, blobs)


@functools.lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _settled_model_info(rev: Revision, blobs: bool) -> bytes:
    return encode(model_info_json(rev, blobs))


def encode(payload: object) -> bytes:
    return json.dumps(payload).encode()


def model_info_json(rev: Revision, blobs: bool) -> JsonObject:
    info: JsonObject = {
        "id": rev.repo_id,
        "modelId": rev.repo_id,
        "sha": rev.commit,
        "lastModified": _iso(rev.last_modified),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [_sibling_json(f, blobs) for f in rev.files.values()],
    }
    if "/" in rev.repo_id:
        info["author"] = rev.repo_id.split("/")[0]
    return info


def tree_entry_json(rev: Revision, tree: GitTree, path: str) -> JsonObject:
    if path in tree.dir_ids:
        return {"type": "directory", "oid": tree.dir_ids[path], "size": 0, "path": path}
    entry = rev.files[path]
    item: JsonObject = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
    if entry.is_lfs:
        item["lfs"] = {"oid": entry.etag, "size": entry.size, "pointerSize": entry.pointer_size}
    return item


def paths_info_json(rev: Revision, paths: list[str]) -> list[JsonObject]:
    """The entries of ``paths`` that exist; missing ones are silently left out, as the Hub does."""
    tree = rev.tree()
    found = []
    for path in dict.fromkeys(paths):
        if path in rev.files or path in tree.dir_ids:
            found.append(tree_entry_json(rev, tree, path))
    return found


def refs_json(view: RepoView, include_prs: bool) -> JsonObject:
    tags = view.tags()
    groups: dict[str, list[JsonObject]] = {
        "branches": [],
        "converts": [],
        "tags": [],
        "pullRequests": [],
    }
    for name, commit in view.refs():
        group, ref = _classify_ref(name, tags)
        groups[group].append({"name": name, "ref": ref, "targetCommit": commit})
    if not include_prs:
        del groups["pullRequests"]  # the Hub only sends them when asked
    return cast(JsonObject, groups)


def commit_json(repo_id: str, commit: str, when: float) -> JsonObject:
    """One entry of ``/api/models/{repo}/commits/{rev}``, in the Hub's shape."""
    author = repo_id.split("/")[0]
    return {
        "id": commit,
        "title": "",
        "message": "",
        "authors": [{"user": author, "avatar": None}],
        "date": _iso(when),
    }


def _iso(timestamp: float) -> str:
    """The one format ``huggingface_hub.utils.parse_datetime`` accepts."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _sibling_json(entry: FileEntry, blobs: bool) -> JsonObject:
    sibling: JsonObject = {"rfilename": entry.path}
    if blobs:
        sibling.update(size=entry.size, blobId=entry.blob_id)
        if entry.is_lfs:
            lfs = {"sha256": entry.etag, "size": entry.size, "pointerSize": entry.pointer_size}
            sibling["lfs"] = lfs
    return sibling


def _classify_ref(name: str, tags: frozenset[str]) -> tuple[str, str]:
    if name in tags:
        return "tags", f"refs/tags/{name}"
    if name.startswith("refs/pr/"):
        return "pullRequests", name
    if name.startswith("refs/convert/"):
        return "converts", name
    return "branches", f"refs/heads/{name}"

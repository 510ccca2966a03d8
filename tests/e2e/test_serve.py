"""The local hub against the real huggingface_hub client, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from huggingface_hub import (
    HfApi,
    RepoFile,
    hf_hub_download,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from controller.mirror.git_objects import default_lfs_rule
from tests.support.hub import LocalHub

REPO = "acme/tiny-model"
MiB = 1024 * 1024


def _repo_files() -> dict[str, bytes | Path]:
    """Regular and LFS files, at the root and two directory levels down."""
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "config.json": json.dumps({"model_type": "tiny", "hidden": 8}).encode(),
        "model.safetensors": bytes(range(256)) * 40,
        "tokenizer/tokenizer.json": b'{"vocab": {"a": 0}}',
        "tokenizer/merges/merges.txt": b"a b\n",
        "weights/shard-00001.bin": hashlib.sha256(b"shard").digest() * 100,
    }


def _content(source: bytes | Path) -> bytes:
    return source if isinstance(source, bytes) else source.read_bytes()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(data: bytes) -> bytes:
    spec = "version https://git-lfs.github.com/spec/v1\n"
    return f"{spec}oid sha256:{_sha256(data)}\nsize {len(data)}\n".encode()


class Raw:
    """Plain http.client, so paths reach the server exactly as written (httpx normalises '..')."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)

    def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        self.connection.request(method, path, body=body or None, headers=dict(headers or {}))
        response = self.connection.getresponse()
        return response.status, response.headers, response.read()

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def raw(hub: LocalHub) -> Iterator[Raw]:
    client = Raw(hub.url)
    yield client
    client.close()


@pytest.fixture
def published(hub: LocalHub) -> str:
    return hub.publish(REPO, _repo_files())


# --- downloads --------------------------------------------------------------------------


def test_agent_harness_registry_is_empty(hub: LocalHub, raw: Raw) -> None:
    status, _, body = raw.request("GET", "/api/agent-harnesses")
    assert status == 200
    assert json.loads(body) == {"standardEnvVars": [], "harnesses": {}}


def test_snapshot_download_is_byte_identical(
    hub: LocalHub, hf_cache: Path, hf_home: Path, published: str
) -> None:
    path = Path(snapshot_download(REPO, cache_dir=hf_cache, endpoint=hub.url))

    assert path.name == published
    for name, source in _repo_files().items():
        assert (path / name).read_bytes() == _content(source), name
    report = scan_cache_dir(hf_cache)
    assert report.warnings == []
    (repo,) = report.repos
    (revision,) = repo.revisions
    assert revision.refs == frozenset({"main"})
    assert not (hf_home / "xet").exists()  # Xet never advertised, never used
    verification = HfApi(endpoint=hub.url).verify_repo_checksums(REPO, cache_dir=hf_cache)
    assert verification.mismatches == [] and verification.missing_paths == []


def test_files_are_fetched_with_head_then_get(
    hub: LocalHub, hf_cache: Path, published: str
) -> None:
    snapshot_download(REPO, cache_dir=hf_cache, endpoint=hub.url)

    file_requests = hub.requests_for("/acme/tiny-model/resolve/*")
    assert sorted(r.method for r in file_requests) == ["GET"] * 6 + ["HEAD"] * 6
    assert all(r.status == 200 for r in file_requests)


def test_head_headers(hub: LocalHub, raw: Raw, published: str) -> None:
    data = _content(_repo_files()["model.safetensors"])
    status, headers, body = raw.request("HEAD", f"/{REPO}/resolve/main/model.safetensors")

    assert status == 200 and body == b""
    assert headers["ETag"] == f'"{_sha256(data)}"'
    assert headers["X-Linked-Etag"] == f'"{_sha256(data)}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == str(len(data))
    assert headers["X-Repo-Commit"] == published
    assert headers["Accept-Ranges"] == "bytes"
    assert not [h for h in headers if h.lower().startswith("x-xet") or h.lower() == "link"]

    status, headers, _ = raw.request("HEAD", f"/{REPO}/resolve/main/config.json")
    config = _content(_repo_files()["config.json"])
    assert headers["ETag"] == f'"{_git_blob_id(config)}"'  # regular file: git blob id


def test_keep_alive_serves_many_requests_on_one_connection(
    hub: LocalHub, raw: Raw, published: str
) -> None:
    for _ in range(3):
        assert raw.request("HEAD", f"/{REPO}/resolve/main/config.json")[0] == 200
        assert raw.request("GET", f"/{REPO}/resolve/main/config.json")[0] == 200
        assert raw.request("GET", f"/api/models/{REPO}/refs")[0] == 200
        assert raw.request("GET", f"/{REPO}/resolve/main/missing")[0] == 404


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-5", 10235, 10239),
        ("bytes=10200-99999", 10200, 10239),
    ],
)
def test_range_requests(
    hub: LocalHub, raw: Raw, published: str, range_header: str, start: int, end: int
) -> None:
    data = _content(_repo_files()["model.safetensors"])
    status, headers, body = raw.request(
        "GET", f"/{REPO}/resolve/main/model.safetensors", {"Range": range_header}
    )
    assert status == 206
    assert body == data[start : end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    assert headers["Content-Length"] == str(end - start + 1)


def test_unsatisfiable_and_ignored_ranges(hub: LocalHub, raw: Raw, published: str) -> None:
    data = _content(_repo_files()["model.safetensors"])
    url = f"/{REPO}/resolve/main/model.safetensors"

    status, headers, _ = raw.request("GET", url, {"Range": f"bytes={len(data)}-"})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(data)}"
    for ignored in ("bytes=0-1,5-6", "bytes=9-3", "items=0-1"):
        status, _, body = raw.request("GET", url, {"Range": ignored})
        assert (status, body) == (200, data)


def test_safetensors_header_is_read_with_ranges(hub: LocalHub) -> None:
    pytest.importorskip("safetensors")
    import numpy as np
    from safetensors.numpy import save

    payload = save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    hub.publish(REPO, {"model.safetensors": payload})
    meta = HfApi(endpoint=hub.url).get_safetensors_metadata(REPO)

    assert meta.files_metadata["model.safetensors"].tensors["w"].shape == [2, 3]
    assert any(r.range and r.status == 206 for r in hub.requests_for("*/model.safetensors"))


# --- metadata --------------------------------------------------------------------------------


def test_model_info_with_files_metadata(hub: LocalHub, published: str) -> None:
    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True)

    assert (info.id, info.sha, info.private, info.gated) == (REPO, published, False, False)
    assert info.last_modified is not None
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == set(_repo_files())
    for name, source in _repo_files().items():
        data, sibling = _content(source), siblings[name]
        assert sibling.size == len(data), name
        if default_lfs_rule(name, len(data)):
            assert sibling.lfs is not None
            assert sibling.lfs.sha256 == _sha256(data)
            assert sibling.lfs.size == len(data)
            assert sibling.lfs.pointer_size == len(_lfs_pointer(data))
            assert sibling.blob_id == _git_blob_id(_lfs_pointer(data))
        else:
            assert sibling.lfs is None
            assert sibling.blob_id == _git_blob_id(data)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_blob_ids_agree_with_git(hub: LocalHub, published: str) -> None:
    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True)
    assert {s.rfilename for s in info.siblings or []} == set(_repo_files())
    for sibling in info.siblings or []:
        data = _content(_repo_files()[sibling.rfilename])
        stored = _lfs_pointer(data) if sibling.lfs else data  # what a git checkout holds
        git = subprocess.run(
            ["git", "hash-object", "--stdin"], input=stored, capture_output=True, check=True
        )
        assert sibling.blob_id == git.stdout.decode().strip()


def test_model_info_without_blobs_lists_names_only(hub: LocalHub, published: str) -> None:
    info = HfApi(endpoint=hub.url).model_info(REPO)
    assert {s.rfilename for s in info.siblings or []} == set(_repo_files())
    assert all(s.size is None and s.blob_id is None for s in info.siblings or [])


def test_revision_resolution_by_branch_tag_commit_and_pr(hub: LocalHub, hf_cache: Path) -> None:
    v1 = hub.publish(REPO, {"f.txt": b"one"})
    hub.tag(REPO, "v1.0", v1)
    v2 = hub.publish(REPO, {"f.txt": b"two"})
    pr = hub.publish(REPO, {"f.txt": b"pr"}, branch="refs/pr/1")
    api = HfApi(endpoint=hub.url)

    assert api.model_info(REPO).sha == v2
    assert api.model_info(REPO, revision="v1.0").sha == v1
    assert api.model_info(REPO, revision=v1).sha == v1
    assert api.model_info(REPO, revision="refs/pr/1").sha == pr
    for revision, expected in [("v1.0", b"one"), (v2, b"two"), ("refs/pr/1", b"pr")]:
        path = hf_hub_download(
            REPO, "f.txt", revision=revision, cache_dir=hf_cache, endpoint=hub.url
        )
        assert Path(path).read_bytes() == expected


def test_list_repo_tree(hub: LocalHub, published: str) -> None:
    api = HfApi(endpoint=hub.url)

    top = {e.path: type(e).__name__ for e in api.list_repo_tree(REPO)}
    assert top == {
        ".gitattributes": "RepoFile",
        "config.json": "RepoFile",
        "model.safetensors": "RepoFile",
        "tokenizer": "RepoFolder",
        "weights": "RepoFolder",
    }
    nested = [e.path for e in api.list_repo_tree(REPO, path_in_repo="tokenizer")]
    assert nested == ["tokenizer/merges", "tokenizer/tokenizer.json"]
    everything = list(api.list_repo_tree(REPO, recursive=True))
    files = {e.path: e for e in everything if isinstance(e, RepoFile)}
    assert set(files) == set(_repo_files())
    safetensors = files["model.safetensors"]
    data = _content(_repo_files()["model.safetensors"])
    assert safetensors.lfs is not None and safetensors.lfs.sha256 == _sha256(data)
    assert not any(getattr(e, "xet_hash", None) for e in everything)


def test_tree_is_paginated_with_link_headers(hub: LocalHub, published: str) -> None:
    hub.server.tree_page_size = 2
    entries = list(HfApi(endpoint=hub.url).list_repo_tree(REPO, recursive=True))

    assert len(entries) == len(_repo_files()) + 3  # tokenizer, tokenizer/merges, weights
    assert len({e.path for e in entries}) == len(entries)
    pages = hub.requests_for(f"/api/models/{REPO}/tree/*")
    assert len(pages) == 5
    assert all(f"/tree/{published}" in p.path for p in pages[1:])  # next pages pin the commit


def test_tree_errors(hub: LocalHub, published: str) -> None:
    api = HfApi(endpoint=hub.url)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(REPO, path_in_repo="nope"))
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree(REPO, revision="nope"))


def test_get_paths_info(hub: LocalHub, published: str) -> None:
    infos = HfApi(endpoint=hub.url).get_paths_info(
        REPO, ["config.json", "tokenizer", "missing.txt", "weights/shard-00001.bin"]
    )
    assert [(e.path, type(e).__name__) for e in infos] == [
        ("config.json", "RepoFile"),
        ("tokenizer", "RepoFolder"),
        ("weights/shard-00001.bin", "RepoFile"),
    ]


def test_list_repo_refs(hub: LocalHub) -> None:
    main = hub.publish(REPO, {"a": b"1"})
    hub.tag(REPO, "v1", main)
    dev = hub.publish(REPO, {"a": b"2"}, branch="dev")
    pr = hub.publish(REPO, {"a": b"3"}, branch="refs/pr/7")
    api = HfApi(endpoint=hub.url)

    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    branches = {(b.name, b.ref, b.target_commit) for b in refs.branches}
    assert branches == {("main", "refs/heads/main", main), ("dev", "refs/heads/dev", dev)}
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [("v1", "refs/tags/v1", main)]
    assert [(p.ref, p.target_commit) for p in refs.pull_requests or []] == [("refs/pr/7", pr)]
    assert api.list_repo_refs(REPO).pull_requests is None


def test_a_branch_move_is_seen_by_the_client(hub: LocalHub, hf_cache: Path) -> None:
    files = _repo_files()
    v1 = hub.publish(REPO, files)
    first = Path(snapshot_download(REPO, cache_dir=hf_cache, endpoint=hub.url))
    v2 = hub.publish(REPO, {**files, "config.json": b'{"hidden": 16}'})
    hub.clear_requests()

    second = Path(snapshot_download(REPO, cache_dir=hf_cache, endpoint=hub.url))

    assert (first.name, second.name) == (v1, v2)
    assert (second / "config.json").read_bytes() == b'{"hidden": 16}'
    assert (first / "config.json").read_bytes() == files["config.json"]
    gets = [r.path for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
    assert gets == [f"/{REPO}/resolve/{v2}/config.json"]  # unchanged blobs are shared
    hub.move_branch(REPO, "main", v1)
    back = hf_hub_download(REPO, "config.json", cache_dir=hf_cache, endpoint=hub.url)
    assert Path(back).read_bytes() == files["config.json"]
    assert (hf_cache / "models--acme--tiny-model" / "refs" / "main").read_text() == v1


# --- errors ----------------------------------------------------------------------------------


def test_missing_repo_revision_and_file_map_to_client_errors(
    hub: LocalHub, hf_cache: Path, published: str
) -> None:
    api = HfApi(endpoint=hub.url)

    def download(repo_id: str, filename: str, revision: str | None = None) -> str:
        return hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=hf_cache, endpoint=hub.url
        )

    with pytest.raises(RepositoryNotFoundError):
        download("acme/nope", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/nope")
    with pytest.raises(RevisionNotFoundError):
        download(REPO, "config.json", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        download(REPO, "missing.txt")
    marker = hf_cache / "models--acme--tiny-model" / ".no_exist" / published / "missing.txt"
    assert marker.exists()  # the client cached the absence thanks to X-Repo-Commit


def test_error_responses_carry_hub_headers(hub: LocalHub, raw: Raw, published: str) -> None:
    cases = [
        ("/acme/nope/resolve/main/config.json", "RepoNotFound", None),
        (f"/{REPO}/resolve/nope/config.json", "RevisionNotFound", None),
        (f"/{REPO}/resolve/main/missing.txt", "EntryNotFound", published),
        (f"/api/models/{REPO}/revision/nope", "RevisionNotFound", None),
    ]
    for path, code, commit in cases:
        status, headers, body = raw.request("GET", path)
        assert status == 404, path
        assert headers["X-Error-Code"] == code
        assert headers["X-Error-Message"]
        assert "error" in json.loads(body)
        assert headers.get("X-Repo-Commit") == commit


@pytest.mark.parametrize(
    "path",
    [
        f"/{REPO}/resolve/main/../../../etc/passwd",
        f"/{REPO}/resolve/main/%2E%2E/%2E%2E/etc/passwd",
        f"/{REPO}/resolve/main/tokenizer/..%2F..%2Fconfig.json",
        f"/{REPO}/resolve/main//etc/passwd",
        f"/{REPO}/resolve/main/%2Fetc%2Fpasswd",
        "/acme/..%2F..%2Fetc/resolve/main/passwd",
        f"/{REPO}/resolve/..%2F..%2F..%2Fblobs/config.json",
    ],
)
def test_path_traversal_is_refused(hub: LocalHub, raw: Raw, published: str, path: str) -> None:
    status, headers, body = raw.request("GET", path)
    assert status in (400, 404)
    assert headers["X-Error-Code"]
    assert b"root:" not in body


def test_links_escaping_the_cache_are_not_served(
    hub: LocalHub, raw: Raw, tmp_path: Path, published: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    snapshot = hub.repo_dir(REPO) / "snapshots" / published
    (snapshot / "leak.txt").symlink_to(secret)
    blobs = hub.repo_dir(REPO) / "blobs"
    (blobs / ("b" * 40)).symlink_to(secret)  # a blob name that passes the pattern check
    (snapshot / "leak2.txt").symlink_to(f"../../blobs/{'b' * 40}")

    for name in ("leak.txt", "leak2.txt"):
        status, _, body = raw.request("GET", f"/{REPO}/resolve/main/{name}")
        assert status == 404 and b"top secret" not in body
    listed = [e.path for e in HfApi(endpoint=hub.url).list_repo_tree(REPO)]
    assert "leak.txt" not in listed and "leak2.txt" not in listed


def test_a_blobs_folder_that_leads_out_of_the_cache_is_not_served(
    hub: LocalHub, raw: Raw, tmp_path: Path, published: str
) -> None:
    # The links keep their usual form (../../blobs/<etag>); the folder itself is moved out.
    blobs = hub.repo_dir(REPO) / "blobs"
    elsewhere = tmp_path / "elsewhere"
    shutil.move(blobs, elsewhere)
    blobs.symlink_to(elsewhere)

    names = [p.name for p in (hub.repo_dir(REPO) / "snapshots" / published).iterdir()]
    assert names
    for name in names:
        assert raw.request("GET", f"/{REPO}/resolve/main/{name}")[0] == 404
    assert not [e.path for e in HfApi(endpoint=hub.url).list_repo_tree(REPO)]


def test_incomplete_blobs_are_never_served(hub: LocalHub, raw: Raw, published: str) -> None:
    partial = f"{'c' * 64}.abcd1234.incomplete"
    (hub.repo_dir(REPO) / "blobs" / partial).write_bytes(b"half")
    snapshot = hub.repo_dir(REPO) / "snapshots" / published
    (snapshot / "partial.bin").symlink_to(f"../../blobs/{partial}")

    assert raw.request("GET", f"/{REPO}/resolve/main/partial.bin")[0] == 404


def test_copied_snapshot_files_are_served(hub: LocalHub, raw: Raw, published: str) -> None:
    # A cache written with HF_HUB_DISABLE_SYMLINKS holds copies: the etag must be computed.
    snapshot = hub.repo_dir(REPO) / "snapshots" / published
    (snapshot / "copied.txt").write_bytes(b"plain copy")

    status, headers, body = raw.request("GET", f"/{REPO}/resolve/main/copied.txt")
    assert (status, body) == (200, b"plain copy")
    assert headers["ETag"] == f'"{_git_blob_id(b"plain copy")}"'


def test_the_hub_is_read_only(hub: LocalHub, raw: Raw, published: str) -> None:
    status, headers, _ = raw.request("PUT", f"/{REPO}/resolve/main/config.json", body=b"x")
    assert status == 405 and headers["X-Error-Code"] == "MethodNotAllowed"
    status, headers, body = raw.request("OPTIONS", f"/{REPO}/resolve/main/config.json")
    assert status == 501 and headers["X-Error-Code"] == "NotImplemented"
    assert "error" in json.loads(body)
    assert raw.request("GET", f"/{REPO}/resolve/main/config.json")[0] == 200  # reconnects


# --- faults ----------------------------------------------------------------------------------


def test_two_server_errors_then_success(hub: LocalHub, hf_cache: Path, published: str) -> None:
    hub.faults.fail("*/resolve/*/config.json", status=500, method="HEAD", times=2)

    path = hf_hub_download(REPO, "config.json", cache_dir=hf_cache, endpoint=hub.url)

    assert Path(path).read_bytes() == _repo_files()["config.json"]
    heads = hub.requests_for("*/config.json", method="HEAD")
    assert [r.status for r in heads] == [500, 500, 200]
    assert hub.faults.pending == 0


def test_rate_limit_with_retry_after_is_honoured(hub: LocalHub, published: str) -> None:
    hub.faults.fail(f"/api/models/{REPO}/tree/*", status=429, retry_after=0)

    entries = list(HfApi(endpoint=hub.url).list_repo_tree(REPO))

    assert len(entries) == 5
    assert [r.status for r in hub.requests_for("*/tree/*")] == [429, 200]


def test_dropped_connection_is_resumed_by_the_client(hub: LocalHub, hf_cache: Path) -> None:
    big = os.urandom(12 * MiB)
    hub.publish(REPO, {"model.safetensors": big})
    # The client writes 10 MiB chunks, so a drop after 11 MiB resumes at 10 MiB.
    hub.faults.drop("*/model.safetensors", after_bytes=11 * MiB)

    path = hf_hub_download(REPO, "model.safetensors", cache_dir=hf_cache, endpoint=hub.url)

    assert _sha256(Path(path).read_bytes()) == _sha256(big)
    gets = hub.requests_for("*/model.safetensors", method="GET")
    assert [(r.status, r.range, r.dropped) for r in gets] == [
        (200, None, True),
        (206, f"bytes={10 * MiB}-", False),
    ]
    assert gets[0].bytes_sent == 11 * MiB
    assert gets[1].bytes_sent == 2 * MiB


def test_connection_closed_before_any_response(
    hub: LocalHub, hf_cache: Path, published: str
) -> None:
    hub.faults.drop("*/config.json", method="HEAD", before_headers=True)

    # huggingface_hub 2.4 lets this transport error escape hf_hub_download (no fallback).
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download(REPO, "config.json", cache_dir=hf_cache, endpoint=hub.url)
    assert [r.status for r in hub.requests_for("*/config.json")] == [0]


def test_stall_delays_the_answer(hub: LocalHub, published: str) -> None:
    hub.faults.stall(f"/api/models/{REPO}/refs", 0.3)
    started = time.monotonic()
    HfApi(endpoint=hub.url).list_repo_refs(REPO)
    assert time.monotonic() - started >= 0.3


def test_stall_beyond_the_client_timeout(hub: LocalHub, published: str) -> None:
    hub.faults.stall(f"/api/models/{REPO}", 30)  # cut short when the hub stops
    with pytest.raises(httpx2.TimeoutException):
        HfApi(endpoint=hub.url).model_info(REPO, timeout=0.2)


def test_corrupted_body_is_stored_under_the_advertised_name(
    hub: LocalHub, hf_cache: Path, published: str
) -> None:
    data = _content(_repo_files()["model.safetensors"])
    hub.faults.corrupt("*/model.safetensors", offset=100)

    path = Path(hf_hub_download(REPO, "model.safetensors", cache_dir=hf_cache, endpoint=hub.url))

    stored = path.read_bytes()
    assert len(stored) == len(data) and stored != data
    assert stored[100] == data[100] ^ 0xFF and stored[:100] == data[:100]
    assert os.path.basename(os.path.realpath(path)) == _sha256(data)  # the client never hashes
    verification = HfApi(endpoint=hub.url).verify_repo_checksums(REPO, cache_dir=hf_cache)
    assert [m["path"] for m in verification.mismatches] == ["model.safetensors"]


def test_faults_are_scoped_by_method_path_and_count(
    hub: LocalHub, raw: Raw, published: str
) -> None:
    hub.faults.fail("*/config.json", status=503, method="GET", times=1)
    url = f"/{REPO}/resolve/main/config.json"

    assert raw.request("HEAD", url)[0] == 200  # method does not match
    assert raw.request("GET", f"/{REPO}/resolve/main/.gitattributes")[0] == 200  # path does not
    assert raw.request("GET", url)[0] == 503
    assert raw.request("GET", url)[0] == 200  # used up
    hub.faults.fail("*", status=500, times=None)
    assert [raw.request("GET", url)[0] for _ in range(3)] == [500, 500, 500]
    hub.faults.clear()
    assert raw.request("GET", url)[0] == 200


# --- the command -----------------------------------------------------------------------------


def test_run_serves_until_sigterm(tmp_path: Path, published: str, hub: LocalHub) -> None:
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_TELEMETRY": "1"}
    code = (
        "import sys; from controller.mirror.server import run; "
        "sys.exit(run(sys.argv[1], '127.0.0.1', 0))"
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(hub.cache_dir)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        assert banner.startswith(f"Serving {hub.cache_dir} at http://127.0.0.1:")
        client = Raw(banner.rsplit(" ", 1)[1])
        assert client.request("GET", f"/api/models/{REPO}")[0] == 200
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_run_refuses_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.mirror.server import run

    assert run(str(tmp_path / "missing"), "127.0.0.1", 0) == 1
    assert "not a directory" in capsys.readouterr().err


def test_unknown_endpoints_say_so(hub: LocalHub, raw: Raw, published: str) -> None:
    status, headers, _ = raw.request("GET", f"/api/models/{REPO}/discussions")
    assert status == 501 and headers["X-Error-Code"] == "NotImplemented"
    with pytest.raises(HfHubHTTPError):
        list(HfApi(endpoint=hub.url).get_repo_discussions(REPO))

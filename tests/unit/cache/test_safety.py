"""Names from a manifest or a hub never address anything outside the cache."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from controller.cache import layout
from controller.domain import Reason, RemoteProblem
from controller.hub import revisions, transfer

SAFE = ["config.json", "a/b/c.safetensors", "tokenizer/vocab.txt", ".gitattributes"]
UNSAFE = ["../x", "a/../../x", "/etc/passwd", "a//b", "", "\\evil", "C:/x", "a/../b"]


@pytest.mark.parametrize("name", SAFE)
def test_safe_names_pass(name: str) -> None:
    layout.check_relative(name)


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(layout.UnsafePathError):
        layout.check_relative(name)


@pytest.mark.parametrize("repo", ["../../etc", "org/../../x", "org/m"])
def test_a_repo_id_maps_to_one_folder_directly_under_the_cache(tmp_path: Path, repo: str) -> None:
    # "/" becomes "--", so even a hostile id is a single name, never a path that climbs.
    assert layout.repo_folder(tmp_path, repo).parent == tmp_path


class _HostileHub(BaseHTTPRequestHandler):
    """Answers model_info with a file name that climbs out of the snapshot."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps(
            {
                "id": "org/m",
                "sha": "1" * 40,
                "siblings": [
                    {"rfilename": "config.json", "size": 2, "blobId": "a" * 40},
                    {"rfilename": "../../../outside.txt", "size": 5, "blobId": "b" * 40},
                ],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_hub_listing_an_escaping_file_name_is_refused(hostile_hub: str) -> None:
    answer = revisions.resolve("org/m", "main", hostile_hub)
    assert isinstance(answer, RemoteProblem)
    assert answer.reason is Reason.UNSAFE_PATH
    assert "../../../outside.txt" in answer.message


def test_fetch_refuses_an_escaping_file_name_before_any_request(tmp_path: Path) -> None:
    ref = transfer.FileRef("org/m", "../../outside.txt", "1" * 40, etag="a" * 40, size=1)
    with pytest.raises(layout.UnsafePathError):
        transfer.fetch(ref, cache_dir=tmp_path / "cache", endpoint="http://127.0.0.1:9")
    assert not (tmp_path / "outside.txt").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_planted_link_out_of_the_cache_is_not_read_as_a_model_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not a model")
    snapshot = tmp_path / "cache" / "models--org--m" / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(secret)
    entry = layout.read_repo(tmp_path / "cache", "org/m").files_at("1" * 40)["config.json"]
    assert entry.size == -1 and entry.blob == ""


@pytest.mark.parametrize(
    ("link_dir", "target"),
    [
        ("", "../../blobs/../../../secret.txt"),
        ("", "../../blobs/sub/../../../../secret.txt"),
        ("sub", "../../../blobs/../../../../secret.txt"),
        ("sub", "../../blobs/a"),
    ],
)
def test_a_link_spelled_like_a_blob_link_but_leaving_blobs_is_not_read(
    tmp_path: Path, link_dir: str, target: str
) -> None:
    (tmp_path / "secret.txt").write_text("not a model")
    folder = tmp_path / "cache" / "models--org--m"
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / "a").write_text("x")
    snapshot = folder / "snapshots" / ("1" * 40) / link_dir
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(target)
    rel = f"{link_dir}/config.json".lstrip("/")
    entry = layout.read_repo(tmp_path / "cache", "org/m").files_at("1" * 40)[rel]
    assert entry.size == -1 and entry.blob == ""


def test_a_link_to_a_blob_reads_the_blobs_size_identity_and_name(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "models--org--m"
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / "abc").write_bytes(b"12345")
    snapshot = folder / "snapshots" / ("1" * 40)
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "top.json").symlink_to("../../blobs/abc")
    (snapshot / "sub" / "deep.json").symlink_to("../../../blobs/abc")
    (snapshot / "odd.json").symlink_to("../../snapshots/../blobs/abc")
    (snapshot / "gone.json").symlink_to("../../blobs/missing")
    (snapshot / "copy.json").write_bytes(b"123")
    (snapshot / "folder-link").symlink_to("sub")  # a link to a directory: neither file nor walked
    files = layout.read_repo(tmp_path / "cache", "org/m").files_at("1" * 40)
    assert sorted(files) == ["copy.json", "gone.json", "odd.json", "sub/deep.json", "top.json"]
    assert (files["copy.json"].blob, files["copy.json"].size) == ("", 3)
    blob = (folder / "blobs" / "abc").stat()
    for rel in ("top.json", "sub/deep.json", "odd.json"):
        entry = files[rel]
        assert (entry.blob, entry.size, entry.inode, entry.mtime_ns) == (
            "abc",
            5,
            blob.st_ino,
            blob.st_mtime_ns,
        ), rel
    assert (files["gone.json"].blob, files["gone.json"].size) == ("missing", -1)


@pytest.mark.parametrize("commit", ["../../../../etc", "a/b", "..", ""])
def test_a_commit_naming_anything_but_one_snapshot_directory_is_refused(
    tmp_path: Path, commit: str
) -> None:
    with pytest.raises(layout.UnsafePathError):
        layout.snapshot_path(tmp_path, "org/m", commit, "passwd")

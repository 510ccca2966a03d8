"""Blob digests agree with hashlib and with git, for every size class of file."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.cache import hashing
from controller.cache.hashing import (
    CHUNK_SIZE,
    BlobHasher,
    HashKind,
    HashSizeError,
    check_blob,
    digest_for_etag,
    feed_from,
    git_blob_sha1_file,
    sha256_file,
)
from controller.system.cancel import Cancelled

SIZES = {
    "empty": 0,
    "small": 11,
    "one-chunk": CHUNK_SIZE,
    "multi-chunk": 2 * CHUNK_SIZE + 12345,  # > 8 MiB and not a multiple of the buffer
}


def _content(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def _git_hash_object(path: Path) -> str:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    out = subprocess.run(
        ["git", "hash-object", "--no-filters", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def blob_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    data = _content(SIZES[request.param])
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, data


def test_sha256_matches_hashlib(blob_file: tuple[Path, bytes]) -> None:
    path, data = blob_file
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_git_blob_sha1_matches_git(blob_file: tuple[Path, bytes]) -> None:
    path, _ = blob_file
    assert git_blob_sha1_file(path) == _git_hash_object(path)


def test_well_known_git_ids() -> None:
    # Fixed points that do not depend on git being installed.
    empty = BlobHasher(HashKind.GIT_BLOB_SHA1, 0)
    assert empty.hexdigest() == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    hello = BlobHasher(HashKind.GIT_BLOB_SHA1, 6)
    hello.update(b"hello\n")
    assert hello.hexdigest() == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_etag_selects_the_digest_kind(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"a": 1}\n')
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    git_id = _git_hash_object(path)

    assert HashKind.for_etag(sha256) is HashKind.SHA256
    assert HashKind.for_etag(git_id) is HashKind.GIT_BLOB_SHA1
    assert digest_for_etag(path, sha256) == sha256
    assert digest_for_etag(path, git_id) == git_id


@pytest.mark.parametrize("etag", ["", "abc", "g" * 64, "0" * 63, "0" * 41, '"' + "0" * 40 + '"'])
def test_unrecognised_etag_is_rejected(tmp_path: Path, etag: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="neither"):
        digest_for_etag(path, etag)


def test_check_blob_reports_match_and_digest(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(_content(1000))
    good = hashlib.sha256(path.read_bytes()).hexdigest()

    assert check_blob(path, good) == (True, good)
    assert check_blob(path, good.upper()) == (True, good)  # etags compare case-insensitively

    path.write_bytes(_content(1000, seed=1))  # same size, other content: silent corruption
    ok, found = check_blob(path, good)
    assert not ok
    assert found == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        check_blob(tmp_path / "absent", "0" * 64)


@pytest.mark.parametrize("kind", list(HashKind))
def test_incremental_hasher_equals_file_digest(tmp_path: Path, kind: HashKind) -> None:
    data = _content(3 * 1024 * 1024 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = sha256_file(path) if kind is HashKind.SHA256 else git_blob_sha1_file(path)

    hasher = BlobHasher(kind, len(data))
    rng = random.Random(42)
    offset = 0
    while offset < len(data):
        step = rng.randint(1, 300_000)
        chunk = data[offset : offset + step]
        # Downloads hand over bytes, bytearrays or memoryviews; all must count the same.
        hasher.update(rng.choice([bytes, bytearray, memoryview])(chunk))
        offset += step

    assert hasher.bytes_seen == len(data)
    assert hasher.hexdigest() == expected
    assert hasher.matches(expected)
    assert hasher.matches(expected.upper())


def test_hasher_for_etag_picks_kind() -> None:
    assert BlobHasher.for_etag("a" * 64).kind is HashKind.SHA256
    assert BlobHasher.for_etag("a" * 40, size=3).kind is HashKind.GIT_BLOB_SHA1


def test_git_hasher_needs_the_size_up_front() -> None:
    with pytest.raises(ValueError, match="size"):
        BlobHasher(HashKind.GIT_BLOB_SHA1)
    with pytest.raises(ValueError, match="negative"):
        BlobHasher(HashKind.SHA256, -1)


@pytest.mark.parametrize("kind", list(HashKind))
@pytest.mark.parametrize("fed", [b"hell", b"hello\n!"])
def test_truncated_or_overlong_input_never_matches(kind: HashKind, fed: bytes) -> None:
    full = b"hello\n"
    reference = BlobHasher(kind, len(full))
    reference.update(full)
    etag = reference.hexdigest()

    hasher = BlobHasher(kind, len(full))
    hasher.update(fed)

    assert not hasher.matches(etag)
    with pytest.raises(HashSizeError):
        hasher.hexdigest()


def test_file_resized_while_hashing_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"content")
    # Pretend the file was longer when it was opened than what could be read.
    monkeypatch.setattr(os, "fstat", lambda fd: SimpleNamespace(st_size=100))

    with pytest.raises(HashSizeError, match="changed while it was hashed"):
        hashing.git_blob_sha1_file(path)


def test_files_hash_correctly_in_parallel_threads(tmp_path: Path) -> None:
    paths = []
    for i in range(6):
        path = tmp_path / f"shard-{i}"
        path.write_bytes(_content(CHUNK_SIZE + i * 1000, seed=i))
        paths.append(path)

    with ThreadPoolExecutor(max_workers=4) as pool:
        digests = list(pool.map(sha256_file, paths))

    assert digests == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


# --------------------------------------------------------------------------- stopping

LARGE = 6 * CHUNK_SIZE + 4321  # seven reads: a stop after the first leaves most of it unread


@pytest.fixture
def large_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = _content(LARGE, seed=3)
    path = tmp_path / "shard.safetensors"
    path.write_bytes(data)
    return path, data


def test_a_stop_after_the_first_chunk_ends_the_hash_there(large_file: tuple[Path, bytes]) -> None:
    path, _ = large_file
    hasher = BlobHasher(HashKind.SHA256)
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()

        def read_one_chunk() -> bool:
            # The stop is requested as soon as the file has been read past its first chunk.
            return os.lseek(fd, 0, os.SEEK_CUR) >= CHUNK_SIZE

        with pytest.raises(Cancelled):
            feed_from(fd, hasher, stop=read_one_chunk)
        position = os.lseek(fd, 0, os.SEEK_CUR)

    assert position == CHUNK_SIZE  # nothing was read after the stop
    assert hasher.bytes_seen == CHUNK_SIZE < LARGE


@pytest.mark.parametrize("kind", list(HashKind))
def test_a_stopped_hash_gives_no_verdict(large_file: tuple[Path, bytes], kind: HashKind) -> None:
    path, data = large_file
    reference = BlobHasher(kind, len(data))
    reference.update(data)
    etag = reference.hexdigest()
    stopped = threading.Event()
    asked: list[bool] = []

    def stop_after_first_chunk() -> bool:
        asked.append(stopped.is_set())
        if len(asked) == 2:  # asked before each read: the second ask follows the first chunk
            stopped.set()
        return stopped.is_set()

    with pytest.raises(Cancelled):
        check_blob(path, etag, stop=stop_after_first_chunk)

    assert asked == [False, False]  # no read was started once the stop was set
    # A stop that is never set changes nothing: the same file still matches its etag.
    assert check_blob(path, etag, stop=lambda: False) == (True, etag)


def test_feeding_stops_at_the_limit(large_file: tuple[Path, bytes]) -> None:
    path, data = large_file
    limit = CHUNK_SIZE + 17  # not a multiple of the buffer: the last read is a short one
    hasher = BlobHasher(HashKind.SHA256)
    with open(path, "rb", buffering=0) as f:
        assert feed_from(f.fileno(), hasher, limit=limit) == limit
        assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == limit  # positioned right after
    assert hasher.hexdigest() == hashlib.sha256(data[:limit]).hexdigest()

"""controller.hub.transfer against the local hub over real HTTP, with faults injected by the hub.

Every assertion is about an outcome: the files in the client cache, their digests, the
error raised, and the hub's request log (statuses, Range headers, bytes sent).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock
from huggingface_hub import hf_hub_download, scan_cache_dir

from controller.cache.hashing import HashKind, digest_bytes
from controller.domain import Reason
from controller.hub.revisions import HubError
from controller.hub.transfer import (
    CHUNK_SIZE,
    DEFAULT_TIMEOUTS,
    Fetched,
    FileRef,
    RetryPolicy,
    Timeouts,
    TokenBucket,
    fetch,
)
from controller.system.cancel import Cancelled, StopSignal
from tests.support.cli import wait_until
from tests.support.hub import LocalHub

REPO = "org/model"
MIB = 1024 * 1024
WEIGHTS = random.Random(7).randbytes(5 * MIB + 12345)  # not periodic: a wrong offset shows
SHARD = random.Random(8).randbytes(3 * MIB)
CONFIG = b'{"model_type": "tiny"}\n'
FILES = {
    "model.safetensors": WEIGHTS,
    "text_encoder/encoder.safetensors": SHARD,
    "config.json": CONFIG,
}
FAST = RetryPolicy(attempts=6, base=0.05, cap=0.2)
TOKEN = "hf_" + "Zq8xT3vLm2Pw9KcR4nYb7HdJ5sGf1AeU6o"
SHA = hashlib.sha256(WEIGHTS).hexdigest()


@pytest.fixture
def commit(hub: LocalHub) -> str:
    return hub.publish(REPO, FILES)


def ref_for(commit: str, path: str = "model.safetensors") -> FileRef:
    data = FILES[path]
    kind = HashKind.GIT_BLOB_SHA1 if path == "config.json" else HashKind.SHA256
    etag = digest_bytes(data, kind)
    return FileRef(REPO, path, commit, etag=etag, size=len(data))


def do_fetch(
    hub: LocalHub,
    cache: Path,
    ref: FileRef,
    *,
    limiter: TokenBucket | None = None,
    token: str | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> Fetched:
    return fetch(
        ref,
        cache_dir=cache,
        endpoint=hub.url,
        retry=FAST,
        limiter=limiter,
        token=token,
        timeouts=timeouts,
    )


def blobs(cache: Path) -> Path:
    return cache / "models--org--model" / "blobs"


def gets(hub: LocalHub, path: str = "model.safetensors") -> list[tuple[int, str | None, int]]:
    return [(r.status, r.range, r.bytes_sent) for r in hub.requests_for(f"*/{path}", "GET")]


def write_partial(cache: Path, etag: str, data: bytes, sidecar_etag: str, size: int) -> Path:
    """A partial as an earlier, killed modelsync process leaves it."""
    folder = blobs(cache)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{etag}.incomplete"
    partial.write_bytes(data)
    sidecar = {"version": 1, "etag": sidecar_etag, "size": size, "commit": "0" * 40}
    (folder / f"{etag}.incomplete.json").write_text(json.dumps(sidecar))
    return partial


def assert_no_partials(cache: Path) -> None:
    assert not [p.name for p in blobs(cache).iterdir() if ".incomplete" in p.name]


# --------------------------------------------------------------------------- layout


def test_fresh_fetch_lands_in_the_hf_layout(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    result = do_fetch(hub, hf_cache, ref_for(commit))

    assert result.digest == SHA and result.transferred == len(WEIGHTS)
    assert result.blob == blobs(hf_cache) / SHA and result.blob.read_bytes() == WEIGHTS
    assert os.readlink(result.snapshot) == f"../../blobs/{SHA}"
    found = hf_hub_download(
        REPO, "model.safetensors", revision=commit, cache_dir=hf_cache, local_files_only=True
    )
    assert Path(found).read_bytes() == WEIGHTS
    assert (hf_cache / ".locks" / "models--org--model" / f"{SHA}.lock").exists()
    assert_no_partials(hf_cache)
    assert [(s, r) for s, r, _ in gets(hub)] == [(200, None)]


def test_nested_and_git_blob_files(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    nested = do_fetch(hub, hf_cache, ref_for(commit, "text_encoder/encoder.safetensors"))
    config = do_fetch(hub, hf_cache, ref_for(commit, "config.json"))

    assert os.readlink(nested.snapshot).startswith("../../../blobs/")
    assert config.digest == digest_bytes(CONFIG, HashKind.GIT_BLOB_SHA1)  # not a sha256
    report = scan_cache_dir(hf_cache)
    assert report.warnings == []
    assert {f.file_name for r in report.repos for rev in r.revisions for f in rev.files} == {
        "encoder.safetensors",
        "config.json",
    }


def test_cached_blob_is_linked_without_any_request(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    do_fetch(hub, hf_cache, ref_for(commit))
    other = hub.publish(REPO, {"model.safetensors": WEIGHTS, "new.json": b"{}"})
    hub.clear_requests()

    again = do_fetch(hub, hf_cache, ref_for(other))

    assert again.digest is None and again.transferred == 0
    assert Path(again.snapshot).read_bytes() == WEIGHTS
    assert hub.requests == []


# --------------------------------------------------------------------------- resuming


def test_partial_with_the_right_etag_is_continued_with_a_range(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    kept = 2 * MIB + 777
    write_partial(hf_cache, SHA, WEIGHTS[:kept], SHA, len(WEIGHTS))

    result = do_fetch(hub, hf_cache, ref_for(commit))

    assert gets(hub) == [(206, f"bytes={kept}-", len(WEIGHTS) - kept)]
    assert result.resumed_from == kept and result.transferred == len(WEIGHTS) - kept
    assert result.digest == SHA and result.blob.read_bytes() == WEIGHTS
    assert_no_partials(hf_cache)


def test_partial_for_another_etag_is_discarded(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    write_partial(hf_cache, SHA, b"\xff" * MIB, "ab" * 32, len(WEIGHTS))

    result = do_fetch(hub, hf_cache, ref_for(commit))

    assert gets(hub) == [(200, None, len(WEIGHTS))]
    assert result.resumed_from == 0 and result.blob.read_bytes() == WEIGHTS


def test_damaged_prefix_is_fetched_again_once(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    prefix = bytearray(WEIGHTS[: 3 * MIB])
    prefix[100] ^= 0x01  # e.g. a power loss after the kernel acknowledged the write
    write_partial(hf_cache, SHA, bytes(prefix), SHA, len(WEIGHTS))

    result = do_fetch(hub, hf_cache, ref_for(commit))

    assert [r for _, r, _ in gets(hub)] == [f"bytes={3 * MIB}-", None]
    assert result.blob.read_bytes() == WEIGHTS


def test_a_stop_before_the_prefix_is_hashed_keeps_the_partial_for_later(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    kept = 2 * MIB + 777
    partial = write_partial(hf_cache, SHA, WEIGHTS[:kept], SHA, len(WEIGHTS))
    signal = StopSignal()
    raised: list[Exception] = []

    def fetch_until_stopped() -> None:
        try:
            fetch(
                ref_for(commit),
                cache_dir=hf_cache,
                endpoint=hub.url,
                retry=FAST,
                stop=signal.for_model("m"),
            )
        except Exception as e:
            raised.append(e)

    lock = FileLock(hf_cache / ".locks" / "models--org--model" / f"{SHA}.lock", mode=0o664)
    (hf_cache / ".locks" / "models--org--model").mkdir(parents=True)
    with lock:  # the prefix is hashed under this lock: only after the stop below
        worker = threading.Thread(target=fetch_until_stopped, daemon=True)
        worker.start()
        wait_until(lambda: hub.requests_for("*/model.safetensors", "HEAD"), "the HEAD")
        signal.stop_all()
    worker.join(timeout=30)

    assert not worker.is_alive()
    assert [type(e) for e in raised] == [Cancelled]
    assert gets(hub) == []  # stopped while hashing the prefix: no byte was asked for
    assert partial.read_bytes() == WEIGHTS[:kept]
    assert not (blobs(hf_cache) / SHA).exists()
    result = do_fetch(hub, hf_cache, ref_for(commit))  # the next attempt resumes it
    assert result.resumed_from == kept and result.digest == SHA


def test_dropped_connection_resumes_from_the_bytes_on_disk(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    cut = 3 * MIB + 500_000
    hub.faults.drop("*/model.safetensors", after_bytes=cut)

    result = do_fetch(hub, hf_cache, ref_for(commit))

    (first, second) = gets(hub)
    assert first[1] is None and first[2] == cut
    assert second[1] is not None
    start = int(second[1].removeprefix("bytes=").rstrip("-"))
    assert cut - CHUNK_SIZE < start <= cut  # only the unwritten tail travels twice
    assert second[0] == 206 and second[2] == len(WEIGHTS) - start
    assert result.blob.read_bytes() == WEIGHTS


# --------------------------------------------------------------------------- retries


def test_server_errors_are_retried(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    hub.faults.fail("*/model.safetensors", 500, times=2)  # the HEAD, then its retry
    hub.faults.fail("*/model.safetensors", 503, method="GET", times=2)

    result = do_fetch(hub, hf_cache, ref_for(commit))

    statuses = [(r.method, r.status) for r in hub.requests_for("*/model.safetensors")]
    assert statuses == [
        ("HEAD", 500),
        ("HEAD", 500),
        ("HEAD", 200),
        ("GET", 503),
        ("GET", 503),
        ("GET", 200),
    ]
    assert result.blob.read_bytes() == WEIGHTS


def test_429_retry_after_is_honoured(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    hub.faults.fail("*/model.safetensors", 429, method="GET", retry_after=1)
    started = time.monotonic()

    result = do_fetch(hub, hf_cache, ref_for(commit))

    # FAST backs off at most 0.2 s: only the server's Retry-After explains a 1 s wait.
    assert time.monotonic() - started >= 0.95
    assert [s for s, _, _ in gets(hub)] == [429, 200]
    assert result.digest == SHA


def test_persistent_failure_gives_up_after_the_policy_attempts(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.fail("*/model.safetensors", 502, method="GET", times=None)

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, ref_for(commit))

    assert caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    assert "HTTP 502" in caught.value.message and "6 attempts" in caught.value.message
    assert len(gets(hub)) == FAST.attempts


@pytest.mark.parametrize(
    ("status", "reason", "words"),
    [
        (404, Reason.DOWNLOAD_FAILED, "not found"),
        (401, Reason.ACCESS_DENIED, "`hf auth login` or set HF_TOKEN"),
        (403, Reason.ACCESS_DENIED, "`hf auth login` or set HF_TOKEN"),
    ],
)
def test_client_errors_are_final(
    hub: LocalHub, hf_cache: Path, commit: str, status: int, reason: Reason, words: str
) -> None:
    hub.faults.fail("*/model.safetensors", status, method="GET", times=None)

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, ref_for(commit))

    assert not caught.value.transient and caught.value.reason is reason
    assert words in caught.value.message
    assert len(gets(hub)) == 1
    assert not (blobs(hf_cache) / SHA).exists()


def test_gated_repo_says_how_to_get_access(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    gated = {"X-Error-Code": "GatedRepo"}
    hub.faults.fail("*/model.safetensors", 403, method="HEAD", headers=gated, times=None)

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, ref_for(commit))

    assert caught.value.reason is Reason.ACCESS_DENIED
    assert "request access" in caught.value.message and "HF_TOKEN" in caught.value.message
    assert len(hub.requests_for("*/model.safetensors", "HEAD")) == 1


def test_unreachable_hub_is_retried_then_reported(hf_cache: Path, commit: str) -> None:
    with pytest.raises(HubError) as caught:
        fetch(ref_for(commit), cache_dir=hf_cache, endpoint="http://127.0.0.1:9", retry=FAST)
    assert caught.value.transient and "Connection refused" in caught.value.message
    assert "6 attempts" in caught.value.message


def test_stalled_requests_time_out_and_are_retried(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.stall("*/model.safetensors", 3, method="HEAD")  # no answer for 3 s
    stuck = hub.faults.hold("*/model.safetensors", after_bytes=2 * MIB + 5)  # silent mid-body
    started = time.monotonic()

    result = do_fetch(hub, hf_cache, ref_for(commit), timeouts=Timeouts(connect=1, read=0.5))

    assert time.monotonic() - started < 3  # neither stall was waited out
    assert result.blob.read_bytes() == WEIGHTS
    stuck.release()  # let the abandoned responses finish, so the log is complete
    assert len(hub.requests_for("*/model.safetensors", "HEAD")) == 2
    # The log is in the order requests finished (the held GET last), so sort: "" first.
    held, resumed = sorted(r.range or "" for r in hub.requests_for("*/model.safetensors", "GET"))
    assert held == "" and resumed.startswith("bytes=")
    assert int(resumed.removeprefix("bytes=").rstrip("-")) > 2 * MIB + 5 - CHUNK_SIZE


# --------------------------------------------------------------------------- integrity


def test_corrupted_bytes_are_never_published(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    hub.faults.corrupt("*/model.safetensors", offset=4 * MIB + 3)

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, ref_for(commit))

    assert caught.value.reason is Reason.CHECKSUM_MISMATCH and not caught.value.transient
    assert "model.safetensors" in caught.value.message
    assert not (blobs(hf_cache) / SHA).exists()
    assert_no_partials(hf_cache)
    assert not (
        hf_cache / "models--org--model" / "snapshots" / commit / "model.safetensors"
    ).exists()


def test_plan_and_hub_disagreeing_is_reported(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    wrong = FileRef(REPO, "model.safetensors", commit, etag="cd" * 32, size=len(WEIGHTS))

    with pytest.raises(HubError) as caught:
        do_fetch(hub, hf_cache, wrong)

    assert not caught.value.transient and "plan again" in caught.value.message
    assert gets(hub) == []


# --------------------------------------------------------------------------- sharing


def test_bandwidth_limit(hub: LocalHub, hf_cache: Path) -> None:
    data = random.Random(9).randbytes(2_000_000)
    commit = hub.publish(REPO, {"blob.bin": data})
    ref = FileRef(REPO, "blob.bin", commit, etag=hashlib.sha256(data).hexdigest(), size=len(data))
    started = time.monotonic()

    result = do_fetch(hub, hf_cache, ref, limiter=TokenBucket(4_000_000))

    assert time.monotonic() - started >= 0.4
    assert result.digest == ref.etag


def test_waits_for_hf_lock_and_reuses_the_blob_it_wrote(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    lock = FileLock(hf_cache / ".locks" / "models--org--model" / f"{SHA}.lock", mode=0o664)
    (hf_cache / ".locks" / "models--org--model").mkdir(parents=True)
    results: list[Fetched] = []
    unknown = FileRef(REPO, "model.safetensors", commit)  # no etag: must ask the hub first
    with lock:  # what hf_hub_download holds while it downloads this blob
        worker = threading.Thread(
            target=lambda: results.append(do_fetch(hub, hf_cache, unknown)), daemon=True
        )
        worker.start()
        wait_until(lambda: hub.requests_for("*/model.safetensors", "HEAD"), "the HEAD")
        blobs(hf_cache).mkdir(parents=True, exist_ok=True)
        (blobs(hf_cache) / SHA).write_bytes(WEIGHTS)  # ... and then publishes
    worker.join(timeout=30)

    (result,) = results
    assert result.digest is None
    assert result.snapshot.read_bytes() == WEIGHTS
    assert gets(hub) == []


# --------------------------------------------------------------------------- secrets


def test_token_never_appears_in_errors(
    hub: LocalHub, hf_cache: Path, commit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # A proxy that echoes the credentials back in its error message.
    echo = {"X-Error-Message": f"bad credentials: Bearer {TOKEN}"}
    hub.faults.fail("*/model.safetensors", 500, method="GET", headers=echo, times=None)
    hub.faults.fail("*/config.json", 401, method="GET", headers=echo, times=None)

    messages = []
    for path in ("model.safetensors", "config.json"):
        with pytest.raises(HubError) as caught:
            do_fetch(hub, hf_cache, ref_for(commit, path), token=TOKEN)
        messages.append(caught.value.message)
    with pytest.raises(HubError) as caught:
        fetch(ref_for(commit), cache_dir=hf_cache, endpoint="http://127.0.0.1:9", retry=FAST)
    messages.append(caught.value.message)

    assert "HTTP 500" in messages[0] and "***" in messages[0]
    assert all(TOKEN not in m and TOKEN[3:] not in m for m in messages), messages


# --------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs as the client cache: the only honest way to hit ENOSPC."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_fails_one_file_and_keeps_its_partial(
    hub: LocalHub, small_disk: Path, commit: str
) -> None:
    shard = do_fetch(hub, small_disk, ref_for(commit, "text_encoder/encoder.safetensors"))

    with pytest.raises(HubError) as caught:
        do_fetch(hub, small_disk, ref_for(commit))

    error = caught.value
    assert error.reason is Reason.DISK_FULL and not error.transient
    assert "disk is full" in error.message and "bytes) more needed" in error.message
    assert len(gets(hub)) == 1  # not retried: waiting does not free space
    partial = blobs(small_disk) / f"{SHA}.incomplete"
    assert 0 < partial.stat().st_size < len(WEIGHTS)
    assert partial.read_bytes() == WEIGHTS[: partial.stat().st_size]
    assert hashlib.sha256(shard.blob.read_bytes()).hexdigest() == shard.etag

    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    kept = partial.stat().st_size
    result = do_fetch(hub, small_disk, ref_for(commit))
    assert gets(hub)[-1][1] == f"bytes={kept}-"
    assert result.digest == SHA and result.resumed_from == kept


def test_a_first_download_cut_before_any_file_completed_leaves_a_repo_hf_can_list(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    # The first response is cut after 64 KiB, and every later one fails: the process gives up
    # with only a partial on disk, as one killed mid-file would leave it.
    hub.faults.drop("*/model.safetensors", after_bytes=64 * 1024)
    hub.faults.fail("*/model.safetensors", 502, method="GET", times=None)

    with pytest.raises(HubError):
        do_fetch(hub, hf_cache, ref_for(commit))

    assert [p.name for p in blobs(hf_cache).iterdir() if p.name.endswith(".incomplete")]
    scanned = scan_cache_dir(hf_cache)
    assert scanned.warnings == []  # not "Repo ignored"
    assert [r.repo_id for r in scanned.repos] == [REPO]  # so `hf cache rm` can find it

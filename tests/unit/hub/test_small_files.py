"""Small files: one GET into the writer's own partial, checked as huggingface_hub's HEAD would
check it, against the local hub and against a hub that sends its files to a CDN."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from huggingface_hub import constants

from controller.cache.hashing import HashKind, digest_bytes
from controller.domain import Reason
from controller.hub.revisions import HubError
from controller.hub.transfer import WHOLE_FILE_AT_MOST, Fetched, FileRef, RetryPolicy, fetch
from tests.support.hub import LocalHub

REPO = "org/small"
WEIGHTS = random.Random(21).randbytes(WHOLE_FILE_AT_MOST)  # the largest file fetched whole
CONFIG = b'{"model_type": "small"}\n'
FAST = RetryPolicy(attempts=4, base=0.05, cap=0.1)
TOKEN = "hf_" + "Vb3Nq8Lw2Xc7Pz5Kd9Hs4Jm6Rt1Fg0AeYu"
SHA = hashlib.sha256(WEIGHTS).hexdigest()
COMMIT = "a" * 40


@pytest.fixture
def commit(hub: LocalHub) -> str:
    return hub.publish(REPO, {"model.safetensors": WEIGHTS, "config.json": CONFIG})


def ref_for(commit: str, path: str = "model.safetensors") -> FileRef:
    data = WEIGHTS if path == "model.safetensors" else CONFIG
    kind = HashKind.SHA256 if path == "model.safetensors" else HashKind.GIT_BLOB_SHA1
    return FileRef(REPO, path, commit, etag=digest_bytes(data, kind), size=len(data))


def do_fetch(endpoint: str, cache: Path, ref: FileRef, token: str | None = None) -> Fetched:
    return fetch(
        ref, cache_dir=cache, endpoint=endpoint, retry=FAST, token=token, private_small_files=True
    )


def leftovers(cache: Path) -> list[str]:
    """Anything in the cache beside blobs, snapshot links, refs and huggingface_hub's locks."""
    return sorted(
        p.name
        for p in cache.rglob("*")
        if not p.is_symlink()
        and (".incomplete" in p.name or p.suffix in (".claim", ".json", ".tmp"))
    )


def test_a_small_file_is_one_get_with_no_head_and_no_bookkeeping(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    weights = do_fetch(hub.url, hf_cache, ref_for(commit))
    config = do_fetch(hub.url, hf_cache, ref_for(commit, "config.json"))

    assert weights.blob.name == SHA and weights.digest == SHA
    assert hashlib.sha256(weights.snapshot.read_bytes()).hexdigest() == SHA
    assert config.snapshot.read_bytes() == CONFIG
    assert [r.method for r in hub.requests_for(f"/{REPO}/resolve/*")] == ["GET", "GET"]
    assert leftovers(hf_cache) == []  # no sidecar, no claim file, no partial


def test_hf_hub_offline_fetches_nothing(
    hub: LocalHub, hf_cache: Path, commit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(HubError) as caught:
        do_fetch(hub.url, hf_cache, ref_for(commit))

    assert not caught.value.transient and "HF_HUB_OFFLINE" in caught.value.message
    assert hub.requests_for(f"/{REPO}/resolve/*") == []


def test_without_private_small_files_the_stable_partial_is_used(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.fail("*/model.safetensors", 502, method="GET", times=None)

    with pytest.raises(HubError):
        fetch(ref_for(commit), cache_dir=hf_cache, endpoint=hub.url, retry=FAST)

    # Left for the next process (or a mirror's clients) under its stable name.
    partials = [p.name for p in (hf_cache / "models--org--small" / "blobs").iterdir()]
    assert f"{SHA}.incomplete" in partials and f"{SHA}.incomplete.json" in partials


def test_a_plan_the_hub_disagrees_with_is_refused_and_nothing_is_kept(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    wrong = FileRef(REPO, "model.safetensors", commit, etag="cd" * 32, size=len(WEIGHTS))

    with pytest.raises(HubError) as caught:
        do_fetch(hub.url, hf_cache, wrong)

    assert not caught.value.transient and "plan again" in caught.value.message
    assert "etag" in caught.value.message
    assert not (hf_cache / "models--org--small" / "blobs" / ("cd" * 32)).exists()
    assert leftovers(hf_cache) == []


def test_corrupted_bytes_are_never_published(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    hub.faults.corrupt("*/model.safetensors", offset=12345, times=None)

    with pytest.raises(HubError) as caught:
        do_fetch(hub.url, hf_cache, ref_for(commit))

    assert caught.value.reason is Reason.CHECKSUM_MISMATCH and not caught.value.transient
    assert not (hf_cache / "models--org--small" / "blobs" / SHA).exists()
    assert leftovers(hf_cache) == []


def test_a_cut_connection_continues_from_the_bytes_on_disk(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.drop("*/model.safetensors", after_bytes=WHOLE_FILE_AT_MOST // 2)

    fetched = do_fetch(hub.url, hf_cache, ref_for(commit))

    assert fetched.digest == SHA
    ranges = [r.range for r in hub.requests_for("*/model.safetensors", "GET")]
    assert ranges[0] is None and ranges[-1] is not None  # the retry asked for the rest only
    assert fetched.transferred < 2 * len(WEIGHTS) - WHOLE_FILE_AT_MOST // 4
    assert leftovers(hf_cache) == []


# --------------------------------------------------------------------------- behind a CDN


@dataclass
class CdnHub:
    """A hub at 127.0.0.1 whose /resolve answers redirect to a CDN at localhost (another
    origin), the way the Hugging Face Hub sends LFS files to its CDN."""

    commit: str = COMMIT
    linked_etag: str = f'"{SHA}"'
    authorizations: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def cdn_hub() -> Iterator[CdnHub]:
    state = CdnHub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            host = self.headers.get("Host", "")
            state.authorizations.append((host.split(":")[0], self.headers.get("Authorization")))
            if self.path.startswith("/cdn/"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(WEIGHTS)))
                self.send_header("ETag", '"cdn-object-etag"')  # a CDN's own, not the sha256
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # a client that refused the answer
                    self.wfile.write(WEIGHTS)
                return
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/cdn/{SHA}?signed=1")
            if state.commit:
                self.send_header("X-Repo-Commit", state.commit)
            self.send_header("X-Linked-Etag", state.linked_etag)
            self.send_header("X-Linked-Size", str(len(WEIGHTS)))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    state.url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def cdn_ref() -> FileRef:
    return FileRef(REPO, "model.safetensors", COMMIT, etag=SHA, size=len(WEIGHTS))


def test_a_file_sent_to_a_cdn_is_checked_on_the_redirect_and_gets_no_token(
    cdn_hub: CdnHub, hf_cache: Path
) -> None:
    fetched = do_fetch(cdn_hub.url, hf_cache, cdn_ref(), token=TOKEN)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == WEIGHTS
    assert cdn_hub.authorizations == [("127.0.0.1", f"Bearer {TOKEN}"), ("localhost", None)]


@pytest.mark.parametrize(
    ("commit", "linked_etag", "says"),
    [
        ("b" * 40, f'"{SHA}"', "commit bbbbbbbbbbbb"),
        (COMMIT, '"' + "e" * 64 + '"', "etag eeeeeeeeeeeeeeee"),
        ("", f'"{SHA}"', "did not send X-Repo-Commit"),
    ],
    ids=["another commit", "another etag", "no commit"],
)
def test_a_redirect_that_disagrees_with_the_plan_is_refused_and_nothing_kept(
    cdn_hub: CdnHub, hf_cache: Path, commit: str, linked_etag: str, says: str
) -> None:
    cdn_hub.commit, cdn_hub.linked_etag = commit, linked_etag

    with pytest.raises(HubError) as caught:
        do_fetch(cdn_hub.url, hf_cache, cdn_ref())

    assert not caught.value.transient and says in caught.value.message
    assert leftovers(hf_cache) == []
    assert not list((hf_cache / "models--org--small" / "blobs").iterdir())

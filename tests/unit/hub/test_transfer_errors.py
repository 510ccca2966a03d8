"""How a download names what went wrong, and what it does with the hub's HEAD.

Every failure leaves a download as a HubError whose reason, message and ``transient`` flag
decide what the plan reports and whether the step is tried again: the errors of
huggingface_hub, of the wire, of httpx2 and of the disk are translated here one by one.
The HEAD's answer decides where the GET goes (the hub itself, or a CDN, without the token)
and is checked against the plan before a byte is kept; its timeout is the download's own.

The hub here is a real HTTP server (two origins: 127.0.0.1 is the hub, localhost its CDN);
the assertions are about errors raised, bytes in the cache and the requests the hub saw.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.server
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from controller.domain import Reason
from controller.hub import ranged, wire
from controller.hub.revisions import HubError
from controller.hub.transfer import (
    Fetched,
    FileRef,
    RetryPolicy,
    Timeouts,
    _as_hub_error,
    fetch,
)
from controller.hub.watchdog import SpeedFloor
from controller.system.cancel import Cancelled, StopSignal
from tests.support.cli import wait_until

REPO = "org/errors"
FILE = "model.safetensors"
DATA = random.Random(47).randbytes(200_000)
SHA = hashlib.sha256(DATA).hexdigest()
COMMIT = "d" * 40
WHERE = f"{REPO}@{COMMIT[:12]}:{FILE}"
ENDPOINT = "http://hub.example:8080"
TOKEN = "hf_" + "Qz7Lm2Nx8Kc4Vb9Ws3Rt6Yp1Hd5Jg0FeAu"
ONCE = RetryPolicy(attempts=1)


# --------------------------------------------------------------------------- translations


def hub_answer(status: int, headers: dict[str, str] | None = None) -> HfHubHTTPError:
    response = httpx2.Response(
        status, headers=headers or {}, request=httpx2.Request("GET", f"{ENDPOINT}/x")
    )
    return HfHubHTTPError(f"{status} from the hub", response=response)


@dataclass(frozen=True)
class Translation:
    error: Exception
    reason: Reason
    transient: bool
    message: str
    retry_after: float | None = None


TRANSLATIONS = {
    "offline": Translation(
        OfflineModeIsEnabled("HF_HUB_OFFLINE is set"),
        Reason.HUB_UNREACHABLE,
        False,
        f"{WHERE}: HF_HUB_OFFLINE is set, so nothing is downloaded",
    ),
    "busy hub, retry-after": Translation(
        hub_answer(503, {"Retry-After": "7"}),
        Reason.DOWNLOAD_FAILED,
        True,
        f"{WHERE}: HTTP 503: 503 from the hub",
        retry_after=7.0,
    ),
    "final answer, retry-after ignored": Translation(
        hub_answer(400, {"Retry-After": "7"}),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{WHERE}: HTTP 400: 400 from the hub",
    ),
    "refused": Translation(
        hub_answer(403),
        Reason.ACCESS_DENIED,
        False,
        f"{ENDPOINT} refused access to {REPO} (HTTP 403); log in with `hf auth login` "
        "or set HF_TOKEN",
    ),
    "missing": Translation(
        hub_answer(404),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{WHERE}: not found on {ENDPOINT} (HTTP 404)",
    ),
    "connection reset": Translation(
        wire.WireError(f"reset by peer, sent {TOKEN}"),
        Reason.DOWNLOAD_FAILED,
        True,
        f"{WHERE}: connection to {ENDPOINT} failed: reset by peer, sent hf_***",
    ),
    "not http": Translation(
        wire.WireError("not an HTTP answer", final=True),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{WHERE}: connection to {ENDPOINT} failed: not an HTTP answer",
    ),
    "unsupported protocol": Translation(
        httpx2.UnsupportedProtocol("ftp is not supported"),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{WHERE}: UnsupportedProtocol: ftp is not supported",
    ),
    "redirect loop": Translation(
        httpx2.TooManyRedirects("Exceeded maximum allowed redirects."),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{WHERE}: TooManyRedirects: Exceeded maximum allowed redirects.",
    ),
    "connect refused": Translation(
        httpx2.ConnectError("connection refused"),
        Reason.DOWNLOAD_FAILED,
        True,
        f"{WHERE}: connection to {ENDPOINT} failed: ConnectError: connection refused",
    ),
    "disk full": Translation(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        Reason.DISK_FULL,
        False,
        f"{FILE}: cannot write to the cache: {os.strerror(errno.ENOSPC)}",
    ),
    "quota": Translation(
        OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
        Reason.DISK_FULL,
        False,
        f"{FILE}: cannot write to the cache: {os.strerror(errno.EDQUOT)}",
    ),
    "read-only": Translation(
        OSError(errno.EROFS, os.strerror(errno.EROFS)),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{FILE}: cannot write to the cache: {os.strerror(errno.EROFS)}",
    ),
    "os error without errno": Translation(
        OSError("the lock file vanished"),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{FILE}: cannot write to the cache: the lock file vanished",
    ),
    "anything else": Translation(
        ValueError(f"odd answer for {TOKEN}\nsecond line"),
        Reason.DOWNLOAD_FAILED,
        False,
        f"{WHERE}: ValueError: odd answer for hf_***",
    ),
}


@pytest.mark.parametrize("case", TRANSLATIONS.values(), ids=TRANSLATIONS.keys())
def test_each_failure_becomes_a_hub_error_with_its_reason_and_retry(case: Translation) -> None:
    ref = FileRef(REPO, FILE, COMMIT, etag=SHA, size=len(DATA))

    error = _as_hub_error(case.error, ref, ENDPOINT)

    assert (error.reason, error.message) == (case.reason, case.message)
    assert error.transient is case.transient
    assert error.retry_after == case.retry_after


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (" 12 ", 12.0),
        ("Mon, 01 Jan 2001 00:00:00 GMT", 0.0),  # a date gone by: no wait, never a negative one
        ("after lunch", None),
        ("", None),
    ],
    ids=["seconds", "a date gone by", "not a time", "empty"],
)
def test_a_busy_hub_says_how_long_to_wait(retry_after: str, wait: float | None) -> None:
    ref = FileRef(REPO, FILE, COMMIT)

    error = _as_hub_error(hub_answer(429, {"Retry-After": retry_after}), ref, ENDPOINT)

    assert error.transient is True and error.retry_after == wait


@pytest.mark.parametrize("zone", ["GMT", "-0000"], ids=["in UTC", "in no zone"])
def test_a_busy_hub_may_name_the_time_to_come_back(zone: str) -> None:
    # "-0000" is a date whose zone is unknown: read as UTC, as the HTTP dates it stands for.
    back = time.time() + 100
    value = time.strftime(f"%a, %d %b %Y %H:%M:%S {zone}", time.gmtime(back))
    ref = FileRef(REPO, FILE, COMMIT)

    error = _as_hub_error(hub_answer(503, {"Retry-After": value}), ref, ENDPOINT)

    assert error.retry_after is not None and 90.0 <= error.retry_after <= 100.0


def test_a_hub_error_is_kept_as_it_is() -> None:
    original = HubError(Reason.CHECKSUM_MISMATCH, "hashes differ", transient=False)

    assert _as_hub_error(original, FileRef(REPO, FILE, COMMIT), ENDPOINT) is original


# --------------------------------------------------------------------------- a hub and its CDN


@dataclass
class Site:
    """What the hub answers; the defaults are an honest hub serving the file itself."""

    commit: str | None = COMMIT
    etag: str | None = f'"{SHA}"'
    size: int | None = len(DATA)
    to_cdn: bool = False  # /resolve answers (HEAD and GET) redirect to the CDN's origin
    moved: bool = False  # the HEAD is sent on to /moved/..., on the hub's own origin
    xet: str = ""  # the HEAD names the file as stored in Xet: "route" or "link" to its token
    head_held: float = 0.0  # seconds the HEAD's answer is held back
    get_status: int = 200
    get_body: bytes = DATA
    retry_after: str | None = None  # the Retry-After of a failed GET
    pause: float = 0.0  # seconds a GET's body stops halfway
    # (host, method, path, Authorization) of every request, in order
    seen: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    ranges: list[str | None] = field(default_factory=list)  # each GET's Range, in order
    url: str = ""
    released: threading.Event = field(default_factory=threading.Event)

    def requests(self) -> list[tuple[str, str, str | None]]:
        return [(host, method, auth) for host, method, _, auth in self.seen]


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def note(self) -> None:
            host = self.headers.get("Host", "").split(":")[0]
            state.seen.append((host, self.command, self.path, self.headers.get("Authorization")))

        def names_the_file(self) -> None:
            if state.commit is not None:
                self.send_header("X-Repo-Commit", state.commit)
            if state.etag is not None:
                self.send_header("X-Linked-Etag", state.etag)
            if state.size is not None:
                self.send_header("X-Linked-Size", str(state.size))
            if state.xet:
                self.send_header("X-Xet-Hash", "ab" * 32)
            token = f"/api/models/{REPO}/xet-read-token"
            if state.xet == "route":
                self.send_header("X-Xet-Refresh-Route", token)
            elif state.xet == "link":
                self.send_header("Link", f'<{state.url}{token}>; rel="xet-auth"')

        def do_HEAD(self) -> None:  # noqa: N802 - the name http.server calls
            self.note()
            state.released.wait(state.head_held)
            if state.moved and not self.path.startswith("/moved/"):
                self.send_response(307)  # a renamed repo: relative, so hf follows it itself
                self.send_header("Location", f"/moved{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if state.to_cdn:
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{port}/cdn/{SHA}")
            else:
                self.send_response(200)
            self.names_the_file()
            if state.size is not None:  # a HEAD's length is the file's: no body follows
                self.send_header("Content-Length", str(state.size))
            elif state.to_cdn:  # the redirect's own empty body: not the file's size
                self.send_header("Content-Length", "0")
            with contextlib.suppress(ConnectionError):  # a client that timed out waiting
                self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            self.note()
            state.ranges.append(self.headers.get("Range"))
            if state.to_cdn and not self.path.startswith("/cdn/"):
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{port}/cdn/{SHA}")
                self.names_the_file()
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(state.get_status)
            self.names_the_file()
            self.send_header("ETag", f'"{SHA}"')
            if state.get_status >= 400:
                self.send_header("Content-Type", "application/json")
            if state.retry_after is not None:
                self.send_header("Retry-After", state.retry_after)
            self.send_header("Content-Length", str(len(state.get_body)))
            self.end_headers()
            half = len(state.get_body) // 2
            with contextlib.suppress(ConnectionError):  # a client that refused the answer
                self.wfile.write(state.get_body[:half])
                self.wfile.flush()
                state.released.wait(state.pause)
                self.wfile.write(state.get_body[half:])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state.url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()


def get(site: Site, cache: Path, ref: FileRef | None = None, **options: object) -> Fetched:
    ref = ref or FileRef(REPO, FILE, COMMIT, etag=SHA, size=len(DATA))
    settings: dict[str, object] = {"token": TOKEN, "retry": ONCE, **options}
    return fetch(ref, cache_dir=cache, endpoint=site.url, **settings)  # type: ignore[arg-type]


def refused(site: Site, cache: Path, ref: FileRef | None = None, **options: object) -> HubError:
    with pytest.raises(HubError) as caught:
        get(site, cache, ref, **options)
    return caught.value


def blobs(cache: Path) -> list[str]:
    folder = cache / "models--org--errors" / "blobs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_offline_the_head_is_not_sent(
    site: Site, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    error = refused(site, hf_cache)

    assert not error.transient and "HF_HUB_OFFLINE" in error.message
    assert site.seen == []


def test_a_file_on_the_hub_is_fetched_from_it_with_the_token(site: Site, hf_cache: Path) -> None:
    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and fetched.etag == SHA and fetched.blob.read_bytes() == DATA
    auth = f"Bearer {TOKEN}"
    assert site.requests() == [("127.0.0.1", "HEAD", auth), ("127.0.0.1", "GET", auth)]
    assert {path for _, _, path, _ in site.seen} == {f"/{REPO}/resolve/{COMMIT}/{FILE}"}


def test_a_file_on_a_cdn_is_fetched_from_it_directly_without_the_token(
    site: Site, hf_cache: Path
) -> None:
    site.to_cdn = True

    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA
    assert fetched.snapshot.read_bytes() == DATA
    assert site.requests() == [("127.0.0.1", "HEAD", f"Bearer {TOKEN}"), ("localhost", "GET", None)]
    assert site.seen[-1][2] == f"/cdn/{SHA}"


def test_a_file_moved_on_the_hub_is_fetched_from_where_it_went_with_the_token(
    site: Site, hf_cache: Path
) -> None:
    site.moved = True

    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA
    auth = f"Bearer {TOKEN}"
    assert [(method, path.startswith("/moved/"), a) for _, method, path, a in site.seen] == [
        ("HEAD", False, auth),
        ("HEAD", True, auth),
        ("GET", True, auth),
    ]


@pytest.mark.parametrize("token_at", ["route", "link"])
def test_a_file_in_xet_is_fetched_through_the_hub_and_only_the_hub_gets_the_token(
    site: Site, hf_cache: Path, token_at: str
) -> None:
    site.to_cdn, site.xet = True, token_at

    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA
    auth = f"Bearer {TOKEN}"
    assert site.requests() == [
        ("127.0.0.1", "HEAD", auth),
        ("127.0.0.1", "GET", auth),
        ("localhost", "GET", None),
    ]


def test_a_held_head_times_out_after_the_read_limit(site: Site, hf_cache: Path) -> None:
    site.head_held = 5.0
    began = time.monotonic()

    error = refused(site, hf_cache, timeouts=Timeouts(connect=2.0, read=0.3))

    assert time.monotonic() - began < 4.0  # the HEAD's limit, not the hub's 5 s
    assert error.transient is True and error.reason is Reason.DOWNLOAD_FAILED
    assert f"connection to {site.url} failed" in error.message
    assert blobs(hf_cache) == []


# --------------------------------------------------------------------------- the HEAD's answer

NOT_A_HUB = "did not send X-Repo-Commit and an ETag; is it a Hugging Face Hub endpoint?"


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"commit": None}, NOT_A_HUB),
        ({"etag": None}, NOT_A_HUB),
        ({"etag": '"../../e"'}, "the hub's etag '../../e' is not a sha256 or git blob id"),
        (
            {"etag": '"' + "z" * 100 + '"'},
            f"the hub's etag {'z' * 80!r} is not a sha256 or git blob id",
        ),
        ({"commit": "e" * 40}, "the hub now answers with commit eeeeeeeeeeee; plan again"),
        (
            {"etag": '"' + "f" * 64 + '"', "size": 5},
            f"the hub now answers with etag {'f' * 16}… instead of {SHA[:16]}…, "
            f"5 bytes instead of {len(DATA)}; plan again",
        ),
    ],
    ids=["no commit", "no etag", "not a digest", "long etag", "another commit", "another file"],
)
def test_a_head_that_disagrees_with_the_plan_fails_before_any_get(
    site: Site, hf_cache: Path, answer: dict[str, object], says: str
) -> None:
    for name, value in answer.items():
        setattr(site, name, value)

    error = refused(site, hf_cache)

    assert error.transient is False and error.reason is Reason.DOWNLOAD_FAILED
    prefix = f"{WHERE}: {site.url} " if says == NOT_A_HUB else f"{WHERE}: "
    assert error.message == prefix + says
    assert [method for _, method, _ in site.requests()] == ["HEAD"]
    assert blobs(hf_cache) == []


def test_a_file_the_plan_has_no_size_for_takes_the_heads(site: Site, hf_cache: Path) -> None:
    fetched = get(site, hf_cache, FileRef(REPO, FILE, COMMIT, etag=SHA))

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA


def test_a_head_without_a_size_takes_the_plans(site: Site, hf_cache: Path) -> None:
    site.size = None

    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA


def test_a_redirects_own_length_is_not_taken_for_the_files(site: Site, hf_cache: Path) -> None:
    site.to_cdn = True
    site.size = None

    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA


def test_a_size_neither_the_plan_nor_the_head_gives_is_refused(site: Site, hf_cache: Path) -> None:
    site.size = None

    error = refused(site, hf_cache, FileRef(REPO, FILE, COMMIT, etag=SHA))

    assert error.transient is False and error.reason is Reason.DOWNLOAD_FAILED
    assert error.message == f"{WHERE}: the hub did not say the file's size"


# --------------------------------------------------------------------------- the GET's answer


def test_bytes_that_do_not_hash_to_the_etag_are_discarded(site: Site, hf_cache: Path) -> None:
    site.get_body = bytes(len(DATA))
    wrong = hashlib.sha256(site.get_body).hexdigest()

    error = refused(site, hf_cache)

    assert error.transient is False and error.reason is Reason.CHECKSUM_MISMATCH
    assert error.message == (
        f"{FILE}: downloaded content hashes to {wrong[:16]}…, the hub says {SHA[:16]}…; "
        "the download was discarded"
    )
    assert blobs(hf_cache) == []


def test_a_bad_request_is_read_as_the_hub_explains_it(site: Site, hf_cache: Path) -> None:
    site.get_status, site.get_body = 400, json.dumps({"error": "malformed range"}).encode()

    error = refused(site, hf_cache, retry=RetryPolicy(attempts=3, base=0.0, cap=0.0))

    assert error.transient is False and error.reason is Reason.DOWNLOAD_FAILED
    assert error.message.startswith(f"{WHERE}: HTTP 400: ")
    assert "malformed range" in error.message
    assert [method for _, method, _ in site.requests()] == ["HEAD", "GET"]


def test_a_success_no_download_expects_is_not_retried(site: Site, hf_cache: Path) -> None:
    site.get_status, site.get_body = 202, b""

    error = refused(site, hf_cache, retry=RetryPolicy(attempts=3, base=0.0, cap=0.0))

    assert error.transient is False and error.reason is Reason.DOWNLOAD_FAILED
    assert error.message == f"{WHERE}: unexpected HTTP 202 for a download"
    assert [method for _, method, _ in site.requests()] == ["HEAD", "GET"]


# --------------------------------------------------------------------------- the partial


def test_a_cut_download_keeps_a_sidecar_naming_what_it_is_part_of(
    site: Site, hf_cache: Path
) -> None:
    site.get_body = DATA[: len(DATA) // 2]  # ends cleanly, short: the partial is kept

    refused(site, hf_cache)

    folder = hf_cache / "models--org--errors" / "blobs"
    assert (folder / f"{SHA}.incomplete").read_bytes() == DATA[: len(DATA) // 2]
    record = json.loads((folder / f"{SHA}.incomplete.json").read_text())
    assert (record["repo"], record["path"], record["commit"]) == (REPO, FILE, COMMIT)


def test_a_resumed_download_reports_its_prefix_first(site: Site, hf_cache: Path) -> None:
    half = len(DATA) // 2
    site.get_body = DATA[:half]
    refused(site, hf_cache)
    site.get_body = DATA
    reports: list[tuple[int, int]] = []

    get(site, hf_cache, progress=lambda done, total: reports.append((done, total)))

    # The hub ignores the Range and sends it all: the prefix is reported, then dropped.
    assert reports[0] == (half, len(DATA))
    assert reports[-1] == (len(DATA), len(DATA))


def test_a_snapshot_entry_pointing_elsewhere_is_pointed_at_the_blob(hf_cache: Path) -> None:
    folder = hf_cache / "models--org--errors"
    (folder / "blobs").mkdir(parents=True)
    (folder / "blobs" / SHA).write_bytes(DATA)
    snapshot = folder / "snapshots" / COMMIT / FILE
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(f"../../blobs/{'0' * 64}")

    fetched = fetch(
        FileRef(REPO, FILE, COMMIT, etag=SHA, size=len(DATA)),
        cache_dir=hf_cache,
        endpoint="http://127.0.0.1:9",
    )

    assert os.readlink(snapshot) == f"../../blobs/{SHA}"
    assert fetched.snapshot.read_bytes() == DATA and fetched.transferred == 0


# --------------------------------------------------------------------------- without a request


def test_offline_a_file_not_cached_fails_for_now_and_asks_nothing(
    site: Site, hf_cache: Path
) -> None:
    error = refused(site, hf_cache, offline=True)

    assert error.transient is True and error.reason is Reason.HUB_UNREACHABLE
    assert error.message == (
        f"offline: {WHERE} is not in the cache; it is fetched once modelsync runs without --offline"
    )
    assert site.seen == [] and blobs(hf_cache) == []


def test_offline_a_cached_file_is_linked_and_reported_whole(site: Site, hf_cache: Path) -> None:
    get(site, hf_cache)
    site.seen.clear()
    reports: list[tuple[int, int]] = []

    fetched = get(
        site, hf_cache, offline=True, progress=lambda done, total: reports.append((done, total))
    )

    blob = hf_cache / "models--org--errors" / "blobs" / SHA
    assert fetched == Fetched(fetched.snapshot, blob, SHA, None, 0, 0)
    assert fetched.snapshot.read_bytes() == DATA
    assert reports == [(len(DATA), len(DATA))] and site.seen == []


def test_a_cache_that_cannot_be_written_fails_for_good(site: Site, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_bytes(b"")

    error = refused(site, not_a_folder)

    assert error.transient is False and error.reason is Reason.DOWNLOAD_FAILED
    assert error.message.startswith(f"{FILE}: cannot write to the cache: ")
    assert not_a_folder.read_bytes() == b""


def test_a_small_file_clears_the_partials_of_writers_that_died_and_says_so(
    site: Site, hf_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = hf_cache / "models--org--errors" / "blobs"
    folder.mkdir(parents=True)
    dead = folder / f"{SHA}.0b1c2d3e.incomplete"  # a writer killed a day ago
    dead.write_bytes(DATA[:1000])
    os.utime(dead, (time.time() - 86400, time.time() - 86400))

    with caplog.at_level(logging.INFO, "modelsync.transfer"):
        fetched = get(site, hf_cache, private_small_files=True)

    assert fetched.digest == SHA and blobs(hf_cache) == [SHA]
    notes = [r.getMessage() for r in caplog.records if r.name == "modelsync.transfer"]
    assert notes == [f"{WHERE}: removed 1 stale partial download(s)"]


# --------------------------------------------------------------------------- byte ranges


def test_a_file_of_exactly_the_ranged_size_is_one_get(
    site: Site, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranged, "RANGED_ABOVE", len(DATA))

    fetched = get(site, hf_cache, connections_per_file=4)

    assert fetched.digest == SHA and site.ranges == [None]


def test_a_large_file_is_one_get_unless_more_connections_are_allowed(
    site: Site, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranged, "RANGED_ABOVE", len(DATA) // 4)

    fetched = get(site, hf_cache)

    assert fetched.digest == SHA and site.ranges == [None]


def test_a_hub_that_ignores_ranges_gets_the_file_over_one_connection_and_says_so(
    site: Site, hf_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ranged, "RANGED_ABOVE", len(DATA) // 4)

    with caplog.at_level(logging.WARNING, "modelsync.transfer"):
        fetched = get(site, hf_cache, connections_per_file=2)

    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA
    notes = [r.getMessage() for r in caplog.records if r.name == "modelsync.transfer"]
    assert len(notes) == 1 and notes[0].startswith(f"{WHERE}: ")
    assert notes[0].endswith("; fetching it over one connection")


@pytest.mark.parametrize(
    ("connections", "ranged_above", "headed"),
    [(2, len(DATA) // 4, True), (1, len(DATA) // 4, False), (2, len(DATA), False)],
    ids=["above the ranged size, two connections", "one connection", "at the ranged size"],
)
def test_a_small_file_is_fetched_whole_unless_it_is_one_to_fetch_as_ranges(
    site: Site,
    hf_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    connections: int,
    ranged_above: int,
    headed: bool,
) -> None:
    monkeypatch.setattr(ranged, "RANGED_ABOVE", ranged_above)

    fetched = get(site, hf_cache, connections_per_file=connections, private_small_files=True)

    assert fetched.digest == SHA
    assert ("HEAD" in [method for _, method, _ in site.requests()]) is headed


# --------------------------------------------------------------------------- waiting


def test_a_body_that_pauses_is_not_cut_when_the_speed_floor_is_off(
    site: Site, hf_cache: Path
) -> None:
    site.pause = 1.0

    fetched = get(site, hf_cache, speed_floor=SpeedFloor(bytes_per_second=0, window=0.3))

    assert fetched.digest == SHA and site.ranges == [None]


def test_a_stop_ends_the_wait_before_a_retry(site: Site, hf_cache: Path) -> None:
    site.get_status, site.get_body = 503, b'{"error": "overloaded"}'
    site.retry_after = "20"
    signal = StopSignal()
    raised: list[BaseException] = []

    def fetch_until_stopped() -> None:
        try:
            get(site, hf_cache, retry=RetryPolicy(attempts=3), stop=signal.for_model("m"))
        except BaseException as e:  # noqa: BLE001 - handed to the test's thread
            raised.append(e)

    worker = threading.Thread(target=fetch_until_stopped, daemon=True)
    worker.start()
    wait_until(lambda: site.ranges, "the first GET")
    began = time.monotonic()
    signal.stop_all()
    worker.join(timeout=15)

    assert time.monotonic() - began < 5.0  # not the 20 s the hub asked for
    assert len(raised) == 1 and isinstance(raised[0], Cancelled)
    assert site.ranges == [None]

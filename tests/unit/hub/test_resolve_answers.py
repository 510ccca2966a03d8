"""What each of the hub's answers to a revision question becomes, asked through
:mod:`controller.hub.wire` with huggingface_hub's headers and read as huggingface_hub reads
errors: a reason, a message for the status, and whether it was asked again.  Against the
local hub over real HTTP, and a tiny server for answers the hub never gives."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import huggingface_hub.constants
import pytest

from controller.domain import Reason, RemoteProblem, RemoteRevision
from controller.hub import revisions, wire
from tests.support.hub import LocalHub

REPO = "org/m"
API = f"/api/models/{REPO}/*"
TOKEN = "hf_SecretTokenOfTheTests1234"
# Sent: huggingface_hub's headers are kept a few seconds per token, and the tests that let it
# send one must not get the headers built while the others forbade it.
SENT_TOKEN = "hf_AcceptedTokenOfTheTests5678"
ATTEMPTS = 1 + len(revisions.RESOLVE_RETRY_DELAYS_S)
# No answer is retried before this long: the shortest jittered sleep of the first retry.
FIRST_RETRY_S = revisions.RESOLVE_RETRY_DELAYS_S[0] * 0.5


@pytest.fixture(autouse=True)
def no_kept_connections() -> Iterator[None]:
    """A connection kept from another test's hub is never asked."""
    wire.close_idle()
    yield
    wire.close_idle()


def gated(status: int) -> Callable[[LocalHub], None]:
    def setup(hub: LocalHub) -> None:
        code = {"X-Error-Code": "GatedRepo"}
        hub.faults.fail(API, status, headers=code, times=None)

    return setup


def failing(status: int, error_code: str | None = None) -> Callable[[LocalHub], None]:
    def setup(hub: LocalHub) -> None:
        headers = {"X-Error-Code": error_code} if error_code else {}
        hub.faults.fail(API, status, headers=headers, times=None)

    return setup


def publish(hub: LocalHub, **options: object) -> None:
    hub.publish(REPO, {"config.json": b"{}"}, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "reason", "said"),
    [
        (failing(401), Reason.ACCESS_DENIED, "HTTP 401"),
        (failing(403), Reason.ACCESS_DENIED, "HTTP 403"),
        (failing(404, "RepoNotFound"), Reason.REPO_NOT_FOUND, f"{REPO} was not found"),
        (failing(404, "RevisionNotFound"), Reason.REVISION_NOT_FOUND, "revision 'main'"),
        (gated(401), Reason.ACCESS_DENIED, "gated"),
        (gated(403), Reason.ACCESS_DENIED, "gated"),
    ],
    ids=["401", "403", "repo-not-found", "revision-not-found", "gated-401", "gated-403"],
)
def test_a_final_answer_is_reported_and_asked_once(
    hub: LocalHub, answer: Callable[[LocalHub], None], reason: Reason, said: str
) -> None:
    publish(hub)
    answer(hub)
    problem = revisions.resolve(REPO, "main", hub.url)
    assert isinstance(problem, RemoteProblem)
    assert problem.reason is reason and said in problem.message
    assert len(hub.requests_for(API)) == 1


@pytest.mark.parametrize(
    ("repo", "published", "reason", "said"),
    [
        ("org/absent", {}, Reason.REPO_NOT_FOUND, "org/absent was not found"),
        (REPO, {"branch": "dev"}, Reason.REVISION_NOT_FOUND, "revision 'main'"),
        (REPO, {"gated": True}, Reason.ACCESS_DENIED, "gated: request access"),
    ],
    ids=["missing-repo", "missing-branch", "gated-without-token"],
)
def test_the_hubs_own_refusals(
    hub: LocalHub, repo: str, published: dict[str, object], reason: Reason, said: str
) -> None:
    publish(hub, **published)
    problem = revisions.resolve(repo, "main", hub.url)
    assert isinstance(problem, RemoteProblem)
    assert problem.reason is reason and said in problem.message
    assert len(hub.requests_for(f"/api/models/{repo}/*")) == 1


def test_a_gated_repo_answers_the_token_it_accepted(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token huggingface_hub would send goes out on the wire too."""
    publish(hub, gated=True)
    hub.accept_token(REPO, SENT_TOKEN)
    monkeypatch.setenv("HF_TOKEN", SENT_TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    assert isinstance(revisions.resolve(REPO, "main", hub.url), RemoteRevision)


class OneAnswerServer(ThreadingHTTPServer):
    """Answers every GET the same way, and keeps the headers of each request."""

    daemon_threads = True

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(("127.0.0.1", 0), OneAnswerHandler)
        self.status, self.body = status, body
        self.user_agents: list[str | None] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class OneAnswerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OneAnswerServer

    def do_GET(self) -> None:
        self.server.user_agents.append(self.headers.get("User-Agent"))
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the requests are in :attr:`OneAnswerServer.user_agents`."""


@pytest.fixture
def proxy_page() -> Iterator[OneAnswerServer]:
    """A 503 whose page is in no UTF encoding, as a proxy or CDN in front of a hub sends."""
    server = OneAnswerServer(503, b"\xff\xfe\xff<html>Service Unavailable</html>")
    server.thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_503_page_in_no_utf_encoding_is_retried_and_reported(
    proxy_page: OneAnswerServer,
) -> None:
    problem = revisions.resolve(REPO, "main", proxy_page.url)
    assert isinstance(problem, RemoteProblem)
    assert problem.reason is Reason.HUB_UNREACHABLE and "503" in problem.message
    assert len(proxy_page.user_agents) == ATTEMPTS


def test_questions_carry_huggingface_hubs_user_agent(proxy_page: OneAnswerServer) -> None:
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    revisions.resolve(REPO, "main", proxy_page.url)
    revisions.is_tag(REPO, "v1", proxy_page.url)
    assert proxy_page.user_agents == [build_hf_headers()["user-agent"]] * (ATTEMPTS + 1)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port held but not listened on: every connection to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


def test_a_refused_connection_is_unreachable(refused_url: str) -> None:
    problem = revisions.resolve(REPO, "main", refused_url)
    assert isinstance(problem, RemoteProblem)
    assert problem.reason is Reason.HUB_UNREACHABLE
    assert f"cannot reach {refused_url}" in problem.message


def test_offline_mode_is_reported_at_once_and_asks_nothing(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(hub)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    problem = revisions.resolve(REPO, "main", hub.url)
    assert time.monotonic() - started < FIRST_RETRY_S  # not asked again: no retry's sleep
    assert isinstance(problem, RemoteProblem)
    assert problem.reason is Reason.HUB_UNREACHABLE and "HF_HUB_OFFLINE" in problem.message
    assert hub.requests == []


@pytest.mark.parametrize("status", [401, 403, 404, 500])
def test_a_token_never_appears_in_a_message(
    hub: LocalHub, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    publish(hub)
    # A proxy that echoes the credentials back in its error message.
    echo = {"X-Error-Message": f"bad credentials: Bearer {TOKEN}"}
    hub.faults.fail(API, status, headers=echo, times=None)
    problem = revisions.resolve(REPO, "main", hub.url)
    assert isinstance(problem, RemoteProblem) and problem.message
    assert TOKEN not in problem.message


def test_a_token_never_appears_when_the_hub_cannot_be_reached(
    refused_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", SENT_TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False)
    problem = revisions.resolve(REPO, "main", refused_url)
    assert isinstance(problem, RemoteProblem) and "cannot reach" in problem.message
    assert SENT_TOKEN not in problem.message


@pytest.mark.parametrize(
    ("name", "fault_status", "answer"),
    [
        ("v1", None, True),  # a tag
        ("main", None, False),  # a branch
        ("v1", 500, None),  # the hub cannot say
    ],
    ids=["tag", "branch", "hub-error"],
)
def test_is_tag(hub: LocalHub, name: str, fault_status: int | None, answer: bool | None) -> None:
    commit = hub.publish(REPO, {"config.json": b"{}"})
    hub.tag(REPO, "v1", commit)
    if fault_status is not None:
        hub.faults.fail(f"/api/models/{REPO}/refs", fault_status, times=None)
    assert revisions.is_tag(REPO, name, hub.url) is answer

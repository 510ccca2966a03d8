"""Which connections a GET uses again, as a real HTTP/1.1 server sees them: one whose answer
was read to its end and that the server keeps open, to the same place, while it is young and
quiet; never one left half-read, told to close, ended by the server, or too old.  A kept
connection that fails before its answer costs one resend on a new connection, no more."""

from __future__ import annotations

import random
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.hub import wire

DEADLINE_S = 5.0
SMALL = 1_000  # arrives with its headers: a half-read leaves the rest in the client's buffer
LARGE = 4_000_000  # more than the socket buffers hold: a half-read leaves it on the wire
FAKE_ANSWER_SIZE = 64


def expected(tag: str, size: int) -> bytes:
    """The body a server tagged ``tag`` sends for ``size`` bytes: no two servers send the same."""
    return random.Random(f"{tag}/{size}").randbytes(size)


@dataclass(frozen=True)
class Seen:
    """One request as the server read it, with the client's end of its connection."""

    path: str
    client: tuple[str, int]


class Handler(BaseHTTPRequestHandler):
    """Paths: ``/bytes/N`` (Content-Length), ``/chunked/N``, ``/close/N`` (says
    ``Connection: close``), ``/idle-close/N`` and ``/idle-408/N`` (ended by the server while
    idle, once the test says so), ``/drop-second/N`` (the second request on a connection is
    dropped unanswered), ``/drop`` (every request dropped) and ``/half-then-fake/N`` (a body
    whose rest, sent only once the client speaks again, reads as an answer of N bytes)."""

    protocol_version = "HTTP/1.1"
    timeout = 10  # a connection no test closes does not hold its thread forever
    server: Server

    def setup(self) -> None:
        super().setup()
        self.answered = 0

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the log is :attr:`Server.seen`."""

    def do_GET(self) -> None:
        self.server.record(Seen(self.path, self.client_address))
        kind, _, size_text = self.path.strip("/").partition("/")
        size = int(size_text or 0)
        body = expected(self.server.tag, size)
        self.answered += 1
        if kind == "bytes":
            self.answer(body)
        elif kind == "chunked":
            self.answer_chunked(body)
        elif kind == "close":
            self.answer(body, [("Connection", "close")])
            # Said, not done: the socket lingers open (and would even answer again), so only
            # the header can keep a client from sending on it.
            self.close_connection = False
        elif kind in ("idle-close", "idle-408"):
            self.answer(body)
            self.end_when_told(send_408=kind == "idle-408")
        elif kind == "drop-second" and self.answered == 1:
            self.answer(body)
        elif kind in ("drop-second", "drop"):
            self.close_connection = True  # nothing sent: the client sees the connection end
        elif kind == "half-then-fake":
            self.half_then_fake(size)
        else:
            self.send_error(404)

    def do_HEAD(self) -> None:  # noqa: N802 - the name http.server calls
        """What a GET of the same path would answer, without its body: ``/bytes/N`` and
        ``/close/N``."""
        self.server.record(Seen(self.path, self.client_address))
        kind, _, size_text = self.path.strip("/").partition("/")
        self.send_response(200)
        self.send_header("Content-Length", size_text or "0")  # the body's, not sent
        if kind == "close":
            self.send_header("Connection", "close")
            self.close_connection = False  # said, not done, as for the GET
        self.end_headers()

    def answer(self, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers or []:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def answer_chunked(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(body), 300):
            piece = body[start : start + 300]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def end_when_told(self, *, send_408: bool) -> None:
        """Wait for the test, then end the idle connection, as a server's idle timeout does
        (some say so with an unasked 408 first)."""
        self.server.end_idle.wait(DEADLINE_S)
        if send_408:
            self.wfile.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        self.close_connection = True

    def half_then_fake(self, size: int) -> None:
        fake = expected("fake", size)
        rest = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode() + fake
        first = b"f" * 100
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(first) + len(rest)}\r\n\r\n".encode()
        self.wfile.write(head + first)  # one write: the client reads it all with the headers
        # The rest goes out once the client sends again (or closes): on a connection used
        # again after a half-read body, it would pass for the next request's answer.
        select.select([self.connection], [], [], DEADLINE_S)
        self.wfile.write(rest)
        self.close_connection = True


class Server(ThreadingHTTPServer):
    """A tagged HTTP/1.1 server that logs each request with its client's address, and counts
    the connections it closed."""

    daemon_threads = True

    def __init__(self, tag: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.tag = tag
        self.end_idle = threading.Event()
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._closed = 0  # connections the server has closed
        # A short poll: shutting down waits for it.
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: clients that hang up mid-answer (a half-read body) are what is tested."""

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        with self._lock:
            self._closed += 1

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    @property
    def connections(self) -> int:
        return len({s.client for s in self.seen})

    def closed(self) -> int:
        with self._lock:
            return self._closed

    def wait_closed(self, count: int) -> None:
        """Poll until the server has closed ``count`` connections."""
        deadline = time.monotonic() + DEADLINE_S
        while self.closed() < count:
            assert time.monotonic() < deadline, "the server did not close the connection"
            time.sleep(0.005)


@pytest.fixture(autouse=True)
def no_kept_connections() -> Iterator[None]:
    """Each test starts and ends with no connection kept from another."""
    wire.close_idle()
    yield
    wire.close_idle()


def start_server(tag: str) -> Server:
    server = Server(tag)
    server.thread.start()
    return server


def stop_server(server: Server) -> None:
    server.end_idle.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    started = start_server("one")
    yield started
    stop_server(started)


@pytest.fixture
def other_server() -> Iterator[Server]:
    started = start_server("two")
    yield started
    stop_server(started)


def fetch(server: Server, path: str) -> bytes:
    """The whole body of a GET, read to its end."""
    with wire.get(server.url(path), {}, connect_timeout=5, read_timeout=5) as body:
        assert body.status == 200
        return read_all(body)


def read_all(body: wire.Body) -> bytes:
    data = bytearray()
    buffer = memoryview(bytearray(64 * 1024))
    while n := body.readinto(buffer):
        data += buffer[:n]
    return bytes(data)


def half_read(server: Server, path: str) -> None:
    with wire.get(server.url(path), {}, connect_timeout=5, read_timeout=5) as body:
        assert body.readinto(memoryview(bytearray(1))) == 1


@pytest.mark.parametrize(
    ("path", "connections"),
    [
        ("/bytes/1000", 1),  # read to the end, kept open: one connection serves all three
        ("/chunked/5000", 1),  # the last chunk read: kept too
        ("/close/1000", 3),  # the server said Connection: close
    ],
)
def test_three_gets_read_to_the_end(server: Server, path: str, connections: int) -> None:
    size = int(path.rsplit("/", 1)[1])
    for _ in range(3):
        assert fetch(server, path) == expected("one", size)
    assert len(server.seen) == 3
    assert server.connections == connections


@pytest.mark.parametrize(("kind", "connections"), [("bytes", 1), ("close", 3)])
def test_heads_between_gets(server: Server, kind: str, connections: int) -> None:
    """A HEAD's answer announces a length but carries no body: the connection serves the next
    request at once, and the next answer is read from its own start."""
    path = f"/{kind}/{SMALL}"
    answer = wire.head(server.url(path), {}, connect_timeout=5, read_timeout=5)
    assert (answer.status, answer.headers["Content-Length"]) == (200, str(SMALL))
    assert fetch(server, path) == expected("one", SMALL)
    assert wire.head(server.url(path), {}, connect_timeout=5, read_timeout=5).status == 200
    assert len(server.seen) == 3
    assert server.connections == connections


@pytest.mark.parametrize("size", [SMALL, LARGE])
def test_a_half_read_body_is_not_reused(server: Server, size: int) -> None:
    half_read(server, f"/bytes/{size}")
    assert fetch(server, "/bytes/2000") == expected("one", 2000)
    assert server.connections == 2


def test_the_rest_of_a_half_read_body_never_passes_for_the_next_answer(server: Server) -> None:
    half_read(server, f"/half-then-fake/{FAKE_ANSWER_SIZE}")
    assert fetch(server, f"/bytes/{FAKE_ANSWER_SIZE}") == expected("one", FAKE_ANSWER_SIZE)
    assert server.connections == 2


@pytest.mark.parametrize("path", ["/idle-close/1000", "/idle-408/1000"])
def test_a_connection_the_server_ended_while_idle_is_not_used(server: Server, path: str) -> None:
    assert fetch(server, path) == expected("one", 1000)
    server.end_idle.set()
    server.wait_closed(1)
    assert fetch(server, "/bytes/3000") == expected("one", 3000)
    assert [s.path for s in server.seen] == [path, "/bytes/3000"]
    assert server.connections == 2


def test_a_request_dropped_on_a_kept_connection_is_sent_once_more(server: Server) -> None:
    assert fetch(server, "/drop-second/1000") == expected("one", 1000)
    assert fetch(server, "/drop-second/1000") == expected("one", 1000)
    # The first answer, the request dropped on the kept connection, its resend on a new one.
    assert len(server.seen) == 3
    assert server.connections == 2


@pytest.mark.parametrize(
    ("warm_up", "sent"),
    [
        (False, 1),  # on a new connection a failure is the caller's to retry
        (True, 2),  # on a kept one: once more on a new connection, and no more
    ],
)
def test_a_request_dropped_on_a_new_connection_is_not_sent_again(
    server: Server, warm_up: bool, sent: int
) -> None:
    if warm_up:
        fetch(server, "/bytes/10")
    with pytest.raises(wire.WireError):
        fetch(server, "/drop")
    dropped = [s for s in server.seen if s.path == "/drop"]
    assert len(dropped) == sent
    assert len({s.client for s in dropped}) == sent


def test_a_connection_older_than_keep_alive_is_not_used(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "KEEP_ALIVE_S", -1.0)  # every kept connection is already too old
    for _ in range(2):
        assert fetch(server, "/bytes/1000") == expected("one", 1000)
    assert server.connections == 2


def test_connections_to_two_servers_never_cross(server: Server, other_server: Server) -> None:
    for _ in range(2):
        assert fetch(server, "/bytes/1000") == expected("one", 1000)
        assert fetch(other_server, "/bytes/1001") == expected("two", 1001)
    assert [s.path for s in server.seen] == ["/bytes/1000"] * 2
    assert [s.path for s in other_server.seen] == ["/bytes/1001"] * 2
    assert server.connections == 1 and other_server.connections == 1


def test_close_idle_leaves_nothing_kept(server: Server) -> None:
    fetch(server, "/bytes/1000")
    wire.close_idle()
    fetch(server, "/bytes/1000")
    assert server.connections == 2

"""A hub serving one file whose answers to GETs a test scripts, one by one.

The local hub (:mod:`tests.support.hub`) only answers as a hub should; some answers a client
must survive cannot be made from it: a 206 that starts elsewhere than asked or names another
total, a body that ends cleanly before the file does or runs past it, a validator of its
own.  This one is a real HTTP server; each GET takes the next scripted :class:`Answer` (an
honest one when none is left), and every GET's ``Range`` and ``If-Range`` are kept, in order,
for the test to read.  The HEAD and every GET name the file as the Hugging Face Hub names an
LFS file: ``X-Repo-Commit``, ``X-Linked-Etag`` and ``X-Linked-Size``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    """One GET's answer; the defaults are what an honest hub sends."""

    status: int = 0  # 0: 206 for a Range, else 200
    first: int | None = None  # a 206's first byte, when not the one asked for
    total: str | None = None  # a 206's Content-Range total, when not the file's size
    length: int | None = None  # body bytes sent, ending cleanly, when fewer than all
    cut: int | None = None  # body bytes sent before the connection is closed mid-body
    extra: bytes = b""  # bytes sent past the end of what was asked
    etag: str | None = None  # the answer's own ETag; None: the file's digest, quoted
    sends_etag: bool = True  # False: no ETag header at all
    linked: bool = True  # names the file with X-Linked-Etag and X-Linked-Size
    names_commit: bool = True  # sends X-Repo-Commit


@dataclass
class ScriptedHub:
    data: bytes
    commit: str
    url: str = ""
    answers: deque[Answer] = field(default_factory=deque)  # the next GETs', in order
    asked: list[tuple[str | None, str | None]] = field(default_factory=list)  # Range, If-Range
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self.answers.extend(answers)

    def ranges(self) -> list[str | None]:
        with self._lock:
            return [r for r, _ in self.asked]

    def take(self, asked: str | None, if_range: str | None) -> Answer:
        with self._lock:
            self.asked.append((asked, if_range))
            return self.answers.popleft() if self.answers else Answer()


def _span(asked: str | None, size: int) -> tuple[int, int]:
    """``bytes=a-`` or ``bytes=a-b`` as [start, end)."""
    if not asked:
        return 0, size
    first, _, last = asked.removeprefix("bytes=").partition("-")
    return int(first), int(last) + 1 if last else size


@contextlib.contextmanager
def serving(data: bytes, commit: str) -> Iterator[ScriptedHub]:
    hub = ScriptedHub(data, commit)
    size = len(data)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:  # noqa: N802 - the name http.server calls
            self.send_response(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hub.sha}"')
            self.send_header("Content-Length", str(size))
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            asked = self.headers.get("Range")
            answer = hub.take(asked, self.headers.get("If-Range"))
            start, end = _span(asked, size)
            status = answer.status or (206 if asked else 200)
            headers = {"ETag": answer.etag or f'"{hub.sha}"'} if answer.sends_etag else {}
            if answer.names_commit:
                headers["X-Repo-Commit"] = commit
            if answer.linked:
                headers.update({"X-Linked-Etag": f'"{hub.sha}"', "X-Linked-Size": str(size)})
            body = data
            if status == 206:
                first = start if answer.first is None else answer.first
                body = data[first : first + end - start]
                total = answer.total or str(size)
                headers["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{total}"
            elif status == 416:
                body = b""
                headers["Content-Range"] = f"bytes */{size}"
            body = (body + answer.extra)[: answer.length]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if answer.cut is not None:
                body = body[: answer.cut]
                self.close_connection = True  # mid-body, as a reset connection leaves it
            with contextlib.suppress(ConnectionError):  # a client that gave up on the answer
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll: the shutdown at the end of each test waits for one.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()

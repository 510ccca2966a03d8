"""Whether a body's bytes already wait, told over plain TCP without asking the socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from controller.hub import wire

FIRST = 100_000  # sent at once; the rest only when the test says so
REST = 400_000


class SplitServer:
    """One HTTP answer over a real socket, its body sent in two parts."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.go_on = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {FIRST + REST}\r\n\r\n".encode()
            conn.sendall(head + b"a" * FIRST)
            self.go_on.wait(10)
            conn.sendall(b"b" * REST)

    def close(self) -> None:
        self.go_on.set()
        self.thread.join(10)
        self.listener.close()


@pytest.fixture
def server() -> Iterator[SplitServer]:
    split = SplitServer()
    yield split
    split.close()


def test_a_short_read_means_nothing_waits_and_a_full_one_that_bytes_do(
    server: SplitServer,
) -> None:
    url = f"http://127.0.0.1:{server.port}/file"
    with wire.get(url, {}, connect_timeout=5, read_timeout=5) as body:
        large = memoryview(bytearray(1 << 20))
        got = 0
        while got < FIRST:
            got += body.readinto(large)
        # The last read came back short of what it asked: it left the socket empty.
        assert got == FIRST and not body.has_bytes()

        server.go_on.set()
        small = memoryview(bytearray(1024))
        assert body.readinto(small) == len(small)
        # It got all it asked for: more was there, and the next read need not wait.
        assert body.has_bytes()
        got += len(small)
        while n := body.readinto(large):
            got += n
        assert got == FIRST + REST

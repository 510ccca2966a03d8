"""The mirror's HTTP server, started and stopped, and ``reconcile serve`` itself.

The standard library's threaded server: a thread per connection, on which each download is
one ``sendfile`` of the blob.  Stopping closes the idle keep-alive connections too, so it
never waits for a client that keeps one open.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import cast

from controller.mirror.handler import HubRequestHandler, MirrorSettings
from controller.mirror.pull_through import PullThrough
from controller.mirror.upstream import Upstream
from controller.system.exits import ExitCode

POLL_INTERVAL = 0.1  # how quickly stop() is noticed by the accept loop

_Request = socket.socket | tuple[bytes, socket.socket]


class MirrorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not make stop() hang
    # socketserver's default backlog is 5: a fleet's nodes, or one client's eight parallel
    # lookups, connecting at once overflow it, and every dropped SYN is sent again by the
    # client only after a second.  The kernel caps this at net.core.somaxconn.
    request_queue_size = socket.SOMAXCONN

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[HubRequestHandler],
        mirror: MirrorSettings,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.mirror = mirror
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler_class)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        address = cast(tuple[str, int], self.server_address)
        self.server_name, self.server_port = address[0], address[1]

    # Track open connections so stop() can close the idle keep-alive ones.

    def process_request(self, request: _Request, client_address: object) -> None:
        with self._connections_lock:
            self._connections.add(cast(socket.socket, request))
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        with self._connections_lock:
            self._connections.discard(cast(socket.socket, request))
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they exit."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)


class HubServer:
    """A local Hub over a cache directory; ``with HubServer(path) as hub: hub.url``."""

    # Each connection's handler, the standard library's way (``RequestHandlerClass``).
    handler_class: type[HubRequestHandler] = HubRequestHandler

    def __init__(
        self,
        cache_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        pull_through: PullThrough | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.host = host
        self.port = port
        self.verbose = verbose
        self.pull_through = pull_through
        self._server: MirrorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = cast(tuple[str, int], self._server.server_address)[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> HubServer:
        if self._server is not None:
            return self
        self._server = MirrorHTTPServer((self.host, self.port), self.handler_class, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"hub-server-{self.url}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None
        if self.pull_through is not None:
            self.pull_through.close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    cache_dir: Path | str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    verbose: bool = False,
    on_ready: Callable[[str], None] | None = None,
    pull_through: PullThrough | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` gets the URL once the port is bound."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serving = HubServer(cache_dir, host, port, verbose=verbose, pull_through=pull_through)
        with serving as server:
            if on_ready is not None:
                on_ready(server.url)
            while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    cache_dir: str,
    host: str,
    port: int,
    *,
    verbose: bool = False,
    upstream: str | None = None,
    token: str | None = None,
    max_bytes: int | None = None,
) -> ExitCode:
    """Entry point of ``reconcile serve``; returns the process exit code.

    ``upstream``: fill misses from that hub, with ``token`` (the mirror's own), keeping the
    directory within ``max_bytes``.
    """
    root = Path(cache_dir).expanduser()
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return ExitCode.ERROR
    pull = None
    if upstream is not None:
        pull = PullThrough(root.resolve(), Upstream(upstream, token), max_bytes=max_bytes)

    def announce(url: str) -> None:
        through = f" (pull-through from {upstream})" if upstream is not None else ""
        print(f"Serving {root} at {url}{through}", flush=True)

    try:
        serve_forever(root, host, port, verbose=verbose, on_ready=announce, pull_through=pull)
    except OSError as error:  # typically the port is taken
        print(f"error: cannot serve on {host}:{port}: {error}", file=sys.stderr)
        return ExitCode.ERROR
    return ExitCode.OK

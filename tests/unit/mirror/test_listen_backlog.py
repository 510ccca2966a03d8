"""The mirror's listening socket holds a burst of connections until its accept loop gets to
them: a fleet's nodes (or one client's parallel lookups) connecting at once must not have their
SYNs dropped, which costs each of them a second before the kernel sends it again."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

from controller.mirror.server import HubServer, MirrorHTTPServer

# Clients connecting while nobody accepts: far above socketserver's default backlog of 5,
# and within the smallest net.core.somaxconn of current kernels (128 before Linux 5.4).
BURST = 64


def test_a_burst_of_connections_waits_in_the_backlog(tmp_path: Path) -> None:
    hub = HubServer(tmp_path)
    server = MirrorHTTPServer(("127.0.0.1", 0), HubServer.handler_class, hub)
    clients: list[socket.socket] = []
    try:
        # The server listens but never accepts: every connection must complete in the kernel.
        host, port = server.socket.getsockname()[:2]
        for _ in range(BURST):
            client = socket.create_connection((host, port), timeout=0.5)
            clients.append(client)
        assert len(clients) == BURST
    finally:
        for client in clients:
            with contextlib.suppress(OSError):
                client.close()
        server.server_close()

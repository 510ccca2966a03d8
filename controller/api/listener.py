"""Where the HTTP API listens: the bind policy, and uvicorn serving the app in a thread.

The API binds 127.0.0.1 by default.  Any other address needs a bearer token
(``MODELSYNC_API_TOKEN``): :func:`check_bind` refuses to serve beyond this machine without
one.

:class:`ApiListener` binds its socket in the caller's thread, so a port in use fails at once
with the ``OSError`` and ``--port 0`` knows its real port before anything is published; from
then on the kernel queues connections, and uvicorn, started in a thread of its own, accepts
them.  Signals stay with the process (uvicorn installs no handlers outside the main thread):
the process decides when the API stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from controller.api.discovery import TOKEN_ENV

# Requests in flight when the API stops get this long to finish; event streams end at once,
# since the controller closes its event bus before it stops the API.
SHUTDOWN_GRACE_SECONDS = 5
STOP_WAIT_SECONDS = SHUTDOWN_GRACE_SECONDS + 2.0


class InsecureBind(ValueError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"refusing to listen on {host}: anything but loopback needs a bearer token; "
            f"set {TOKEN_ENV} (clients send `Authorization: Bearer <token>`), or listen on "
            "127.0.0.1"
        )


class ApiListener:
    """``app`` served on ``host:port`` by uvicorn in a background thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        """Binds at once; raises ``OSError`` when the address cannot be had."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        config = uvicorn.Config(
            app,
            # The process has configured logging already: uvicorn adds no handlers, and its
            # start-up lines and access log stay out of the controller's log.
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # no proxy is trusted to say who the client is
            server_header=False,
            headers=[("server", "modelsync")],
            ws="none",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _Server(config)
        self._stopping = False
        self.url = _url(*self._socket.getsockname()[:2])  # where this machine reaches it
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="modelsync-http",
            daemon=True,
        )

    @property
    def failed(self) -> bool:
        """uvicorn ended without being asked to (its error is in the log)."""
        return self._thread.ident is not None and not self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (within the grace), and close."""
        self._stopping = True
        self._server.exit()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_SECONDS)
        self._socket.close()

    def __enter__(self) -> ApiListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(uvicorn.Server):
    """uvicorn's server, idle at no cost: it wakes once a second (to refresh its ``Date``
    header) or when asked to stop, where uvicorn polls for the stop ten times a second --
    most of an idle controller's CPU time."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: Callable[[], None] | None = None

    async def main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def wake() -> None:
            loop.call_soon_threadsafe(stop.set)

        self._wake = wake
        # on_tick refreshes the default headers when its counter is a multiple of 10.
        while not await self.on_tick(0):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def exit(self) -> None:
        """Stop serving (from any thread)."""
        self.should_exit = True
        wake = self._wake
        if wake is not None:
            # RuntimeError: the loop has already closed; the server is done.
            with contextlib.suppress(RuntimeError):
                wake()


def _url(host: str, port: int) -> str:
    """Where this machine reaches a socket bound to ``host`` (a wildcard through loopback)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

"""One GET of a file's body, read straight into the caller's buffer; one HEAD of its metadata.

Both carry huggingface_hub's own headers, and the caller reads their answers as huggingface_hub
reads them.  Why not its httpx session: httpx parses the stream through h11 in pure Python and
hands out new ~64 KiB ``bytes`` objects, copying every byte twice on the way, with the GIL
held.  Measured on 4 x 256 MiB over loopback, download + sha256 through it took about 1.6x
the CPU of ``http.client`` reading with ``readinto`` into one reused buffer; no pure-Python
HTTP client is faster than that, and the standard library's is kept as well as any.  And the
first request through that session cost a process about 0.1 s (importing huggingface_hub's
download module, making the client).

What this adds to ``http.client``: redirects (the token is dropped when one leaves the origin,
as httpx does), the proxies of the environment (``HTTPS_PROXY``, ``NO_PROXY``... as httpx
honours them), httpx's TLS trust store, separate connect and read timeouts, and reads that
return as soon as *some* bytes arrived (``readinto1``), so a caller sees a trickle as it comes
and can judge its speed.  Every failure of the network is a :class:`WireError`; local errors
stay ``OSError``.

A connection whose answer was read to its end is kept for the next request to the same place
(:class:`_IdleConnections`), as httpx pools them: a pass asks the hub about every model and
fetches many small files, and a new connection per request costs a handshake on both sides
and, on a hub that serves each connection from its own thread, a thread.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import select
import socket
import ssl
import threading
import time
import urllib.request
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote, urljoin, urlsplit

MAX_REDIRECTS = 10
ERROR_BODY_LIMIT = 64 * 1024  # an error's body is read for its message, never more than this
REDIRECTS = (301, 302, 303, 307, 308)
KEEP_ALIVE_S = 5.0  # httpx's keep-alive expiry: servers drop idle connections after a while
IDLE_PER_PLACE = 8  # idle connections kept per origin (and proxy), the most recently used

# (scheme, host, port, proxy, TLS context): where a kept connection may be used again.
_Place = tuple[str, str, int | None, str | None, ssl.SSLContext | None]


class WireError(Exception):
    """The connection failed (refused, reset, timed out, cut short, not HTTP): worth a retry,
    unless ``final``."""

    def __init__(self, message: str, *, final: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.final = final
        self.timed_out = timed_out  # nothing came within the read timeout


@dataclass(frozen=True)
class Redirect:
    """One redirect followed on the way to a body: a hub says what a file is on the answer
    that sends the client to a CDN."""

    status: int
    headers: Message


@dataclass(frozen=True)
class Answer:
    """The answer to a HEAD: a status and headers, and no body."""

    status: int
    headers: Message
    method = "HEAD"

    def read_error(self) -> bytes:
        return b""  # a HEAD's error says what it has to say in its status and headers


class Body:
    """A response whose headers were read; its body is read with :meth:`readinto`."""

    method = "GET"

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        redirects: tuple[Redirect, ...] = (),
        place: _Place | None = None,
    ):
        self._connection = connection
        self._place = place  # where the connection may serve again once the body is read
        self._response = response
        self.status = response.status
        self.headers = response.headers
        self.redirects = redirects  # the answers that led here, in order
        length = response.getheader("Content-Length")
        self.length = int(length) if length and length.isdigit() else None
        self._left = self.length
        self._filled = True  # the last read got all it asked for (see has_bytes)
        # Chunked bodies are rare for files (the hub sends Content-Length); they are read
        # through http.client's own decoder.
        self._chunked = bool(response.chunked) or self.length is None

    def readinto(self, buffer: memoryview) -> int:
        """Fill the start of ``buffer`` with the next bytes, returning as soon as any came;
        0 at the end of the body.  Raises :class:`WireError` on a broken connection, including
        one that closes before ``Content-Length`` bytes."""
        try:
            if self._chunked:
                data = self._response.read1(len(buffer))
                buffer[: len(data)] = data
                self._filled = len(data) == len(buffer)
                return len(data)
            if self._left is not None and self._left <= 0:
                return 0
            want = len(buffer) if self._left is None else min(len(buffer), self._left)
            # One read of the socket at most; large reads skip the reader's own buffer.
            fp = self._response.fp
            if fp is None:
                return 0
            n = fp.readinto1(buffer[:want])
        except (OSError, http.client.HTTPException) as e:
            raise _wire_error(e) from None
        if n == 0 and self._left:
            raise WireError(f"the body ended {self._left} bytes short of its Content-Length")
        if self._left is not None:
            self._left -= n
        self._filled = n == want
        return n

    def has_bytes(self) -> bool:
        """Whether bytes of the body already wait, so the next read returns without waiting
        for the network.  A read returns as soon as any bytes are there: over plain TCP, one
        that got all it asked for found the socket holding at least that much, and one that
        came back short left it empty -- known without a syscall per read.  Over TLS a read
        returns one record at most, which says nothing about the socket: it is asked."""
        sock = self._connection.sock
        if not isinstance(sock, ssl.SSLSocket):
            return self._filled
        if sock.pending():
            return True
        with contextlib.suppress(OSError, ValueError):
            return bool(select.select([sock], [], [], 0)[0])
        return False

    def read_error(self) -> bytes:
        """The start of an error's body: it carries the hub's message."""
        with contextlib.suppress(OSError, http.client.HTTPException):
            return self._response.read(ERROR_BODY_LIMIT)
        return b""

    def interrupt(self) -> None:
        """Wake a thread blocked reading this body (closing the socket would not, on Linux)."""
        sock = self._connection.sock
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Keep the connection for the next request if its answer was read to the end and
        the server will keep it open; otherwise close it (a half-read body cannot be
        skipped without reading it)."""
        if self._place is not None and self._read_to_end() and not self._response.will_close:
            self._response.close()  # the connection's reader of this answer, not its socket
            _IDLE.keep(self._place, self._connection)
        else:
            self._connection.close()

    def _read_to_end(self) -> bool:
        if self._chunked:
            return self._response.isclosed()  # http.client closes it after the last chunk
        return self._left == 0

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get(
    url: str,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    tls: ssl.SSLContext | None = None,
) -> Body:
    """GET ``url`` and return once its headers arrived, following redirects."""
    headers = dict(headers)
    redirects: list[Redirect] = []
    for _ in range(MAX_REDIRECTS + 1):
        route = _route(url, tls)
        connection, response = _exchange(route, headers, connect_timeout, read_timeout, tls)
        location = response.getheader("Location")
        if response.status not in REDIRECTS or not location:
            return Body(connection, response, tuple(redirects), route.place)
        redirects.append(Redirect(response.status, response.headers))
        connection.close()
        following = urljoin(url, location)
        if not same_origin(url, following):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        url = following
    raise WireError(f"more than {MAX_REDIRECTS} redirects", final=True)


def head(
    url: str,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
    tls: ssl.SSLContext | None = None,
) -> Answer:
    """HEAD ``url``, once: its redirects are the caller's to follow or not (huggingface_hub
    follows those that stay on the Hub, and reads a file's metadata from the one that leaves
    it for a CDN).  The connection is kept for the next request, as after a body read to its
    end."""
    route = _route(url, tls)
    connection, response = _exchange(
        route, headers, connect_timeout, read_timeout, tls, method="HEAD"
    )
    answer = Answer(response.status, response.headers)
    try:
        response.read()  # nothing to read: http.client knows a HEAD's answer has no body
    except (OSError, http.client.HTTPException):
        connection.close()
        return answer
    if response.will_close:
        connection.close()
    else:
        response.close()
        _IDLE.keep(route.place, connection)
    return answer


@dataclass(frozen=True)
class _Route:
    """How a request for a URL is sent: to which place, with which request target, and the
    headers a plain-HTTP proxy needs."""

    scheme: str
    host: str
    port: int | None
    proxy: str | None
    target: str
    proxy_headers: dict[str, str]
    place: _Place


def _route(url: str, tls: ssl.SSLContext | None) -> _Route:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise WireError(f"invalid URL: {e}", final=True) from None
    if parts.scheme not in ("http", "https") or not host:
        raise WireError(f"unsupported URL scheme {parts.scheme!r}", final=True)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts.scheme, host)
    proxy_headers: dict[str, str] = {}
    if proxy is not None and parts.scheme == "http":
        via = urlsplit(proxy)
        target = url  # a plain-HTTP proxy is sent the absolute URL
        proxy_headers = _proxy_auth(via.username, via.password)
    place = (parts.scheme, host, port, proxy, tls)
    return _Route(parts.scheme, host, port, proxy, target, proxy_headers, place)


def _exchange(
    route: _Route,
    headers: dict[str, str],
    connect_timeout: float,
    read_timeout: float,
    tls: ssl.SSLContext | None,
    method: str = "GET",
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send the request and read the answer's headers, on a kept connection if there is
    one.  A server may close a kept connection just as it is used again; the request is then
    sent once more on a new one, as httpx does (a GET or a HEAD can always be asked again)."""
    request_headers = {**headers, **route.proxy_headers}
    kept = _IDLE.take(route.place)
    if kept is not None:
        if kept.sock is not None:
            kept.sock.settimeout(read_timeout)
        try:
            return kept, _send(kept, method, route.target, request_headers)
        except (ConnectionError, http.client.BadStatusLine):
            kept.close()
        except (OSError, http.client.HTTPException) as e:
            kept.close()
            raise _wire_error(e) from None
    connection = _connect(route, connect_timeout, read_timeout, tls)
    try:
        return connection, _send(connection, method, route.target, request_headers)
    except (OSError, http.client.HTTPException) as e:
        connection.close()
        raise _wire_error(e) from None


def _send(
    connection: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str]
) -> http.client.HTTPResponse:
    connection.request(method, target, headers=headers)
    return connection.getresponse()


class _IdleConnections:
    """Connections whose last answer was read to its end, by place, newest last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[_Place, list[tuple[float, http.client.HTTPConnection]]] = {}

    def keep(self, place: _Place, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(place, [])
            idle.append((time.monotonic(), connection))
            surplus = idle[:-IDLE_PER_PLACE]
            del idle[:-IDLE_PER_PLACE]
        for _, old in surplus:
            old.close()

    def take(self, place: _Place) -> http.client.HTTPConnection | None:
        """The most recently kept connection that is still fit to use, if any."""
        while True:
            with self._lock:
                idle = self._idle.get(place)
                if not idle:
                    return None
                since, connection = idle.pop()
            if time.monotonic() - since <= KEEP_ALIVE_S and _quiet(connection):
                return connection
            connection.close()

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, connection in connections:
                connection.close()


def _quiet(connection: http.client.HTTPConnection) -> bool:
    """Nothing to read on an idle connection: a server that closed it, or sent bytes no
    request asked for, made it readable."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False


_IDLE = _IdleConnections()


def close_idle() -> None:
    """Close every kept connection (a hub restarted, a test ended)."""
    _IDLE.close_all()


def same_origin(a: str, b: str) -> bool:
    default = {"http": 80, "https": 443}
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme, pa.hostname, pa.port or default.get(pa.scheme)) == (
            pb.scheme,
            pb.hostname,
            pb.port or default.get(pb.scheme),
        )
    except ValueError:
        return False  # a Location that cannot be parsed gets no token


def _connect(
    route: _Route, connect_timeout: float, read_timeout: float, tls: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    """A new, open connection for ``route`` (through its proxy, if any)."""
    connection: http.client.HTTPConnection
    if route.proxy is None:
        if route.scheme == "https":
            connection = http.client.HTTPSConnection(
                route.host, route.port, timeout=connect_timeout, context=tls or _default_tls()
            )
        else:
            connection = http.client.HTTPConnection(route.host, route.port, timeout=connect_timeout)
    else:
        via = urlsplit(route.proxy)
        if route.scheme == "https":
            connection = http.client.HTTPSConnection(
                via.hostname or "", via.port, timeout=connect_timeout, context=tls or _default_tls()
            )
            auth = _proxy_auth(via.username, via.password)
            connection.set_tunnel(route.host, route.port, headers=auth)
        else:
            connection = http.client.HTTPConnection(
                via.hostname or "", via.port, timeout=connect_timeout
            )
    try:
        connection.connect()
    except (OSError, http.client.HTTPException) as e:
        connection.close()
        raise _wire_error(e) from None
    if connection.sock is not None:
        # The connect timeout is spent; from here on the limit is the silence between reads.
        connection.sock.settimeout(read_timeout)
    return connection


def _proxy_for(scheme: str, host: str) -> str | None:
    proxies = _environment_proxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


@functools.cache
def _environment_proxies() -> dict[str, str]:
    """The environment's proxies (``HTTPS_PROXY``, ``NO_PROXY`` ...), read once per process,
    as huggingface_hub's session reads them once when it is made: reading them walks the
    whole environment, which cost a good part of a small file's request."""
    return urllib.request.getproxies_environment()


def _proxy_auth(user: str | None, password: str | None) -> dict[str, str]:
    if not user:
        return {}
    pair = f"{unquote(user)}:{unquote(password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


_TLS: ssl.SSLContext | None = None


def _default_tls() -> ssl.SSLContext:
    """The trust store huggingface_hub's client verifies with (SSL_CERT_FILE and friends)."""
    global _TLS
    if _TLS is None:
        import httpcore2

        _TLS = httpcore2.default_ssl_context(_trust_env=True)
    return _TLS


def _wire_error(error: BaseException) -> WireError:
    return WireError(describe(error), timed_out=isinstance(error, TimeoutError))


def describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    name = type(error).__name__
    return f"{name}: {text}" if text else name

"""One GET of a file's body, read straight into the caller's buffer.

The HEAD (metadata, the redirect to a CDN, auth) goes through huggingface_hub's session; the
body comes through here, with huggingface_hub's own headers.  Why not its httpx session for the
body too: httpx parses the stream through h11 in pure Python and hands out new ~64 KiB ``bytes``
objects, copying every byte twice on the way, with the GIL held.  Measured on 4 x 256 MiB over
loopback, download + sha256 through it took about 1.6x the CPU of ``http.client`` reading with
``readinto`` into one reused buffer; no pure-Python HTTP client is faster than that, and the
standard library's is kept as well as any.

What this adds to ``http.client``: redirects (the token is dropped when one leaves the origin,
as httpx does), the proxies of the environment (``HTTPS_PROXY``, ``NO_PROXY``... as httpx
honours them), httpx's TLS trust store, separate connect and read timeouts, and reads that
return as soon as *some* bytes arrived (``readinto1``), so a caller sees a trickle as it comes
and can judge its speed.  Every failure of the network is a :class:`WireError`; local errors
stay ``OSError``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import select
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote, urljoin, urlsplit

MAX_REDIRECTS = 10
ERROR_BODY_LIMIT = 64 * 1024  # an error's body is read for its message, never more than this
REDIRECTS = (301, 302, 303, 307, 308)


class WireError(Exception):
    """The connection failed (refused, reset, timed out, cut short, not HTTP): worth a retry,
    unless ``final``."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True)
class Redirect:
    """One redirect followed on the way to a body: a hub says what a file is on the answer
    that sends the client to a CDN."""

    status: int
    headers: Message


class Body:
    """A response whose headers were read; its body is read with :meth:`readinto`."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        redirects: tuple[Redirect, ...] = (),
    ):
        self._connection = connection
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
            raise WireError(describe(e)) from None
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
        # Never reused: a body left half-read cannot be, and a fresh connection per file or
        # range costs one round trip on a transfer of megabytes.
        self._connection.close()

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
        connection, target, proxy_headers = _connect(url, connect_timeout, read_timeout, tls)
        try:
            connection.request("GET", target, headers={**headers, **proxy_headers})
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as e:
            connection.close()
            raise WireError(describe(e)) from None
        location = response.getheader("Location")
        if response.status not in REDIRECTS or not location:
            return Body(connection, response, tuple(redirects))
        redirects.append(Redirect(response.status, response.headers))
        connection.close()
        following = urljoin(url, location)
        if not same_origin(url, following):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        url = following
    raise WireError(f"more than {MAX_REDIRECTS} redirects", final=True)


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
    url: str, connect_timeout: float, read_timeout: float, tls: ssl.SSLContext | None
) -> tuple[http.client.HTTPConnection, str, dict[str, str]]:
    """An open connection for ``url`` (through the environment's proxy, if any), the
    request target to send on it and the headers a plain-HTTP proxy needs."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise WireError(f"invalid URL: {e}", final=True) from None
    if parts.scheme not in ("http", "https") or not host:
        raise WireError(f"unsupported URL scheme {parts.scheme!r}", final=True)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proxy = _proxy_for(parts.scheme, host)
    connection: http.client.HTTPConnection
    proxy_headers: dict[str, str] = {}
    if proxy is None:
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=tls or _default_tls()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
    else:
        via = urlsplit(proxy)
        auth = _proxy_auth(via.username, via.password)
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                via.hostname or "", via.port, timeout=connect_timeout, context=tls or _default_tls()
            )
            connection.set_tunnel(host, port, headers=auth)
        else:
            connection = http.client.HTTPConnection(
                via.hostname or "", via.port, timeout=connect_timeout
            )
            target = url  # a plain-HTTP proxy is sent the absolute URL
            proxy_headers = auth
    try:
        connection.connect()
    except (OSError, http.client.HTTPException) as e:
        connection.close()
        raise WireError(describe(e)) from None
    if connection.sock is not None:
        # The connect timeout is spent; from here on the limit is the silence between reads.
        connection.sock.settimeout(read_timeout)
    return connection, target, proxy_headers


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


def describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    name = type(error).__name__
    return f"{name}: {text}" if text else name

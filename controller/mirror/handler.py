"""One HTTP connection to the mirror: read each request, route it, answer as the Hub would.

The routes are those ``huggingface_hub`` uses to download: model info and revisions, tree
listings and commits (paginated with ``Link`` headers), paths-info, refs, and ``resolve`` for
files, with HEAD and byte ranges; and the mirror's own ``/healthz`` (and, with an upstream,
``/metrics``).  Anything else is answered, in the Hub's error format, as not served.
Keep-alive is on (the client pools connections), so every request's body is read in full and
every failure either answers or closes the connection: a client never hangs on this side.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

from controller.cache import layout
from controller.mirror.documents import (
    EMPTY_REGISTRY,
    commit_json,
    encode,
    model_info_document,
    paths_info_json,
    refs_json,
    tree_entry_json,
)
from controller.mirror.errors import HubError
from controller.mirror.health import SERVING
from controller.mirror.ranges import Unsatisfiable, parse_range
from controller.mirror.repo_view import FileEntry, RepoView, Revision, open_repo

if TYPE_CHECKING:
    from controller.mirror.pull_through import PullThrough

TREE_PAGE_SIZE = 1000  # what the Hub returns per /tree page without expand
COMMITS_PAGE_SIZE = 50  # what the Hub returns per /commits page
IDLE_TIMEOUT = 120.0  # seconds a keep-alive connection may sit idle before its thread exits
MAX_REQUEST_BODY = 1024 * 1024  # paths-info bodies are small; refuse anything that is not

_HOST_RE = re.compile(r"[A-Za-z0-9.\-:\[\]]+")


class MirrorSettings(Protocol):
    """What every request reads of the server it arrived at."""

    @property
    def cache_dir(self) -> Path: ...

    @property
    def verbose(self) -> bool: ...

    @property
    def pull_through(self) -> PullThrough | None:
        """Set with ``--upstream``: misses are filled from it and access is checked by it."""
        ...


class _MirrorServer(Protocol):
    mirror: MirrorSettings


# --- response bodies -------------------------------------------------------------------------


class Body(Protocol):
    length: int

    def send(self, sock: socket.socket, start: int, count: int) -> int:
        """Send ``count`` bytes from ``start`` of the body; returns how many went out."""
        ...


class BytesBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def send(self, sock: socket.socket, start: int, count: int) -> int:
        sock.sendall(memoryview(self.data)[start : start + count])
        return count


class FileBody:
    """A slice of an open file, sent with sendfile(2): no copies through user space."""

    def __init__(
        self,
        stream: BinaryIO,
        offset: int,
        length: int,
        counter: Callable[[int], None] | None = None,
    ) -> None:
        self.stream = stream
        self.offset = offset  # of the body's first byte in the file
        self.length = length
        self.counter = counter  # told the bytes that went out

    def send(self, sock: socket.socket, start: int, count: int) -> int:
        sent = sock.sendfile(self.stream, self.offset + start, count)
        if self.counter is not None:
            self.counter(sent)
        return sent


class Content(Protocol):
    """A file to answer with: its size, and any span of it as a response body."""

    @property
    def size(self) -> int: ...

    def body(self, start: int, length: int) -> Body: ...


class BlobContent:
    """A complete blob of the directory."""

    def __init__(self, stream: BinaryIO, counter: Callable[[int], None] | None = None) -> None:
        self.stream = stream
        self.size = os.fstat(stream.fileno()).st_size
        self.counter = counter

    def body(self, start: int, length: int) -> Body:
        return FileBody(self.stream, start, length, self.counter)


class ShortBody(Exception):
    """The file shrank while being sent; the connection cannot be reused."""


# --- the request handler ---------------------------------------------------------------------


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    server_version = "modelsync-serve"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = IDLE_TIMEOUT
    tree_page_size = TREE_PAGE_SIZE
    commits_page_size = COMMITS_PAGE_SIZE

    # The request being answered: when it arrived, and what of the answer is on the wire
    # (the status, 0 before the status line; the body's bytes), for the ``-v`` log line.
    started = 0.0
    status_sent = 0
    bytes_sent = 0

    @property
    def mirror(self) -> MirrorSettings:
        return cast(_MirrorServer, self.server).mirror

    def do_GET(self) -> None:
        self.serve("GET")

    def do_HEAD(self) -> None:
        self.serve("HEAD")

    def do_POST(self) -> None:
        self.serve("POST")

    def do_PUT(self) -> None:
        self.serve("PUT")

    def do_DELETE(self) -> None:
        self.serve("DELETE")

    def do_PATCH(self) -> None:
        self.serve("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request, unknown method) in the Hub's format."""
        self.close_connection = True
        phrase = HTTPStatus(code).phrase
        error = HubError(code, re.sub(r"[^A-Za-z]", "", phrase), message or phrase)
        self.send_hub_error("HEAD" if self.command == "HEAD" else "GET", error)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by one line per request in ``serve``, with the bytes actually sent."""

    def log_message(self, format: str, *args: object) -> None:
        if self.mirror.verbose:
            super().log_message(format, *args)

    # The request cycle: read, answer, log.

    def serve(self, method: str) -> None:
        """Answer one request whose line and headers were read; never raises."""
        self.started = time.monotonic()
        self.status_sent, self.bytes_sent = 0, 0
        try:
            try:
                target = urlsplit(self.path)
                body = self._read_body()
                self.respond(method, target, body)
            except HubError as error:
                self.send_hub_error(method, error)
        except Exception as error:  # a handler must answer or close, never hang the client
            self._fail(method, error)
        finally:
            if self.mirror.verbose:
                ms = (time.monotonic() - self.started) * 1000
                line = f'{self.client_address[0]} "{method} {self.path}" {self.status_sent}'
                print(f"{line} {self.bytes_sent}B {ms:.1f}ms", file=sys.stderr, flush=True)

    def respond(self, method: str, target: SplitResult, body: bytes) -> None:
        """Answer a request whose body was read, by what its path names.

        Segments stay URL-quoted until split, because a revision arrives as one segment
        with its slashes encoded (``refs%2Fpr%2F1``).
        """
        segments = target.path.split("/")[1:]
        query = parse_qs(target.query)
        pull = self.mirror.pull_through
        if segments == ["healthz"]:
            # Up while it serves: with an upstream, whether that answers is in the body.
            self._require(method, "GET", "HEAD")
            self.send_json(method, 200, SERVING if pull is None else pull.health_report())
        elif segments == ["metrics"] and pull is not None:
            self._require(method, "GET", "HEAD")
            data, content_type = pull.exposition(self.headers.get("Accept"))
            headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
            self.start_response(200, headers)
            if method == "GET":
                self.send_body(BytesBody(data))
        elif segments == ["api", "agent-harnesses"]:
            self._require(method, "GET", "HEAD")
            self.send_json(method, 200, EMPTY_REGISTRY)
        elif segments[:2] == ["api", "models"]:
            self._route_api(method, segments[2:], query, body)
        elif "resolve" in segments[1:3]:
            self._route_resolve(method, segments)
        else:
            raise HubError(501, "NotImplemented", f"modelsync serve does not serve {target.path}")

    def _read_body(self) -> bytes:
        """Always consume the body, or the next request on this connection is garbage."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HubError(411, "LengthRequired", "chunked request bodies are not supported")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise HubError(400, "BadRequest", "invalid Content-Length") from None
        if length > MAX_REQUEST_BODY:
            self.close_connection = True
            raise HubError(413, "PayloadTooLarge", "request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _fail(self, method: str, error: Exception) -> None:
        self.close_connection = True
        if isinstance(error, (ConnectionError, TimeoutError, ShortBody)):
            return  # the peer left, or the file changed under us: nothing to answer
        traceback.print_exception(error, file=sys.stderr)
        if self.status_sent == 0:
            with contextlib.suppress(OSError):  # the answer is best effort; closing is not
                self.send_hub_error(method, HubError(500, "InternalError", str(error)))

    # Routing.

    def _route_api(
        self, method: str, segments: list[str], query: dict[str, list[str]], body: bytes
    ) -> None:
        view, tail = self._locate(segments, marker=None)
        if not tail or tail[0] == "revision":
            self._require(method, "GET", "HEAD")
            revision = unquote("/".join(tail[1:])) if tail else "main"
            rev = view.revision(revision)
            self.send_document(method, 200, model_info_document(rev, _flag(query, "blobs")))
        elif tail[0] == "tree" and len(tail) >= 2:
            self._require(method, "GET", "HEAD")
            self._send_tree(method, view, tail[1], unquote("/".join(tail[2:])), query)
        elif tail[0] == "paths-info" and len(tail) >= 2:
            self._require(method, "POST")
            rev = view.revision(unquote("/".join(tail[1:])))
            paths = _requested_paths(self.headers.get("Content-Type"), body)
            self.send_json(method, 200, paths_info_json(rev, paths))
        elif tail == ["refs"]:
            self._require(method, "GET", "HEAD")
            self.send_json(method, 200, refs_json(view, _flag(query, "include_prs")))
        elif tail[0] == "commits" and len(tail) >= 2:
            self._require(method, "GET", "HEAD")
            self._send_commits(method, view, unquote("/".join(tail[1:])), query)
        else:
            raise HubError(501, "NotImplemented", f"modelsync serve does not serve {self.path}")

    def _route_resolve(self, method: str, segments: list[str]) -> None:
        self._require(method, "GET", "HEAD")
        view, tail = self._locate(segments, marker="resolve")
        if len(tail) < 2:
            raise HubError(404, "EntryNotFound", "no file given")
        commit = view.resolve(unquote(tail[0]))
        filename = _repo_path(unquote("/".join(tail[1:])))
        entry = view.file(commit, filename)
        if entry is None:
            message = f"{filename} does not exist at revision {commit}"
            raise HubError(404, "EntryNotFound", message, commit=commit)
        self._send_file(method, entry, commit)

    def _locate(self, segments: list[str], marker: str | None) -> tuple[RepoView, list[str]]:
        """Find the repo named by the first one or two segments (``org/name`` or ``name``).

        With a ``marker`` ("resolve"), the segment after the repo id must be it.
        """
        pull = self.mirror.pull_through
        if pull is not None:
            return pull.locate(segments, marker, self.headers.get("Authorization"))
        root = self.mirror.cache_dir.resolve()
        candidates = []
        for size in (2, 1):
            if len(segments) <= size - 1 + (marker is not None):
                continue
            if marker is not None and segments[size] != marker:
                continue
            repo_id = "/".join(unquote(s) for s in segments[:size])
            candidates.append(repo_id)
            view = open_repo(root, repo_id)
            if view is not None:
                return view, segments[size + (marker is not None) :]
        name = candidates[0] if candidates else "/".join(segments)
        raise HubError(404, "RepoNotFound", f"Repository {name} not found")

    def _require(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            headers = [("Allow", ", ".join(allowed))]
            raise HubError(405, "MethodNotAllowed", "this hub is read-only", headers=headers)

    # Answers.

    def _send_tree(
        self, method: str, view: RepoView, revision: str, base: str, query: dict[str, list[str]]
    ) -> None:
        rev = view.revision(unquote(revision))
        tree = rev.tree()
        if base and base not in tree.dir_ids:
            message = f"{base} is not a directory at revision {rev.commit}"
            raise HubError(404, "EntryNotFound", message, commit=rev.commit)
        paths = list(tree.walk(base, _flag(query, "recursive")))
        start = _cursor(query)
        size = self.tree_page_size
        page = [tree_entry_json(rev, tree, p) for p in paths[start : start + size]]
        headers = []
        if start + size < len(paths):
            next_page = self._next_page(rev, base, query, start + size)
            headers.append(("Link", f'<{next_page}>; rel="next"'))
        self.send_json(method, 200, page, headers)

    def _send_commits(
        self, method: str, view: RepoView, revision: str, query: dict[str, list[str]]
    ) -> None:
        """The Hub pages commits with ``?p=N`` (from 0) and a ``Link`` to the next page."""
        commit = view.resolve(revision)
        history = view.history(commit)
        page = _page_number(query)
        size = self.commits_page_size
        entries = [commit_json(view.repo_id, c, t) for c, t in history[page * size :][:size]]
        headers = []
        if (page + 1) * size < len(history):
            # Pinned to the commit, as tree pages are: a branch moving between pages
            # cannot mix two histories.
            link = f"{self._base_url()}/api/models/{view.repo_id}/commits/{commit}?p={page + 1}"
            headers.append(("Link", f'<{link}>; rel="next"'))
        self.send_json(method, 200, entries, headers)

    def _next_page(self, rev: Revision, base: str, query: dict[str, list[str]], at: int) -> str:
        """Pin the next page to the commit, so a branch moving between pages cannot mix trees."""
        path = f"/api/models/{rev.repo_id}/tree/{rev.commit}"
        if base:
            path += "/" + quote(base, safe="")
        recursive = str(_flag(query, "recursive")).lower()
        expand = str(_flag(query, "expand")).lower()
        return f"{self._base_url()}{path}?recursive={recursive}&expand={expand}&cursor={at}"

    def _base_url(self) -> str:
        host = self.headers.get("Host", "")
        if not _HOST_RE.fullmatch(host):  # never echo a hostile Host header into a link
            address = cast(tuple[str, int], self.server.server_address)
            host = f"{address[0]}:{address[1]}"
        return f"http://{host}"

    def _send_file(self, method: str, entry: FileEntry, commit: str) -> None:
        with self._content(method, entry, commit) as content:
            size = content.size
            headers = [
                ("Content-Type", "application/octet-stream"),
                ("ETag", f'"{entry.etag}"'),
                ("X-Linked-Etag", f'"{entry.etag}"'),
                ("X-Linked-Size", str(size)),
                ("X-Repo-Commit", commit),
                ("Accept-Ranges", "bytes"),
            ]
            try:
                span = parse_range(self.headers.get("Range"), size)
            except Unsatisfiable:
                message = f"range {self.headers.get('Range')} outside a {size}-byte file"
                unsatisfied = [*headers[1:], ("Content-Range", f"bytes */{size}")]
                raise HubError(416, "RangeNotSatisfiable", message, headers=unsatisfied) from None
            start, length = (0, size) if span is None else (span[0], span[1] - span[0] + 1)
            headers.append(("Content-Length", str(length)))
            if span is not None:
                headers.append(("Content-Range", f"bytes {span[0]}-{span[1]}/{size}"))
            self.start_response(206 if span is not None else 200, headers)
            if method == "GET":
                self.send_body(content.body(start, length))

    def _content(
        self, method: str, entry: FileEntry, commit: str
    ) -> contextlib.AbstractContextManager[Content]:
        pull = self.mirror.pull_through
        if pull is not None:
            return pull.content(method, entry, commit)
        return _blob_content(entry.blob)

    def send_json(
        self,
        method: str,
        status: int,
        payload: object,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.send_document(method, status, encode(payload), headers)

    def send_document(
        self,
        method: str,
        status: int,
        data: bytes,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A JSON document already encoded."""
        content = [("Content-Type", "application/json; charset=utf-8")]
        self.start_response(status, [*content, ("Content-Length", str(len(data))), *headers])
        if method != "HEAD":
            self.send_body(BytesBody(data))

    def send_hub_error(self, method: str, error: HubError) -> None:
        headers = [("X-Error-Code", error.code), ("X-Error-Message", _header_safe(error.message))]
        if error.commit is not None:
            headers.append(("X-Repo-Commit", error.commit))
        headers.extend(error.headers)
        self.send_json(method, error.status, {"error": error.message}, headers)

    def start_response(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:  # tell the client not to reuse this connection
            self.send_header("Connection", "close")
        self.end_headers()
        self.status_sent = status

    def send_body(self, body: Body) -> None:
        self.send_span(body, 0, body.length)

    def send_span(self, body: Body, start: int, count: int) -> None:
        """Send bytes ``start`` to ``start + count`` of ``body``, all of them or raise."""
        if count <= 0:
            return
        sent = body.send(self.connection, start, count)
        self.bytes_sent += sent
        if sent < count:
            raise ShortBody


@contextlib.contextmanager
def _blob_content(blob: Path) -> Iterator[Content]:
    with blob.open("rb") as stream:
        yield BlobContent(stream)


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


def _page_number(query: Mapping[str, list[str]]) -> int:
    value = query.get("p", ["0"])[-1]
    if not value.isdigit():
        raise HubError(400, "BadRequest", f"invalid page {value!r}")
    return int(value)


def _cursor(query: Mapping[str, list[str]]) -> int:
    value = query.get("cursor", ["0"])[-1]
    if not value.isdigit():
        raise HubError(400, "BadRequest", f"invalid cursor {value!r}")
    return int(value)


def _repo_path(path: str) -> str:
    try:
        return layout.check_repo_path(path)
    except ValueError:
        raise HubError(400, "BadRequest", f"invalid path {path!r}") from None


def _requested_paths(content_type: str | None, body: bytes) -> list[str]:
    """``paths=a&paths=b`` form bodies (what the client sends) or ``{"paths": [...]}``."""
    text = body.decode("utf-8", errors="replace")
    if content_type and content_type.startswith("application/json"):
        try:
            paths = json.loads(text).get("paths", [])
        except (ValueError, AttributeError):
            raise HubError(400, "BadRequest", "invalid JSON body") from None
    else:
        paths = parse_qs(text).get("paths", [])
    return [p.strip("/") for p in paths if isinstance(p, str)]


def _header_safe(text: str) -> str:
    """Header values must be latin-1 and must not let a crafted path inject headers."""
    ascii_text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else " " for c in ascii_text)

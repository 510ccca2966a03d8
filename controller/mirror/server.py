"""Serve a Hugging Face cache directory read-only over the Hub's HTTP protocol.

``reconcile serve`` lets a cluster download each model once: nodes point their
``endpoint`` at this server and ``huggingface_hub`` works against it unchanged. The
same server is the tests' local hub, which is why it has an optional fault injector.

Only the stdlib is used, and the cache is re-read on every request, because the
directory may change underneath (a controller downloading into it, a test moving a
branch). What a cache cannot know is invented conservatively: there is one author
(the org), no card data, no commit history, and ``lastModified`` is the snapshot's
mtime. Xet is never advertised, so clients always use plain HTTP ranges.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import BinaryIO, Protocol, cast
from urllib.parse import parse_qs, quote, unquote, urlsplit

from controller.mirror import seed
from controller.system.exits import ExitCode

TREE_PAGE_SIZE = 1000  # what the Hub returns per /tree page without expand
IDLE_TIMEOUT = 120.0  # seconds a keep-alive connection may sit idle before its thread exits
MAX_REQUEST_BODY = 1024 * 1024  # paths-info bodies are small; refuse anything that is not
MAX_RECORDS = 10_000  # the request log is bounded so a long-running server does not grow
POLL_INTERVAL = 0.1  # how quickly stop() is noticed by the accept loop
SETTLE_TIMEOUT = 5.0  # longest HubServer.requests waits for in-flight requests to be logged

# Temporary names that controller.mirror.seed uses while writing; never content.
_SEED_TEMP_RE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")
# huggingface_hub rewrites refs/<name> through refs/<name>.<uuid8>.tmp.
_CLIENT_TEMP_REF_RE = re.compile(r".+\.[0-9a-f]{8}\.tmp")
_HOST_RE = re.compile(r"[A-Za-z0-9.\-:\[\]]+")
_EMPTY_REGISTRY: dict[str, object] = {"standardEnvVars": [], "harnesses": {}}

JsonObject = dict[str, object]


class HubError(Exception):
    """An error answered in the Hub's format: ``X-Error-Code`` is what the client maps."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        commit: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit
        self.headers = tuple(headers)


# --- reading the cache -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of a revision, as the Hub describes it."""

    path: str
    blob: Path  # fully resolved, checked to lie inside the cache directory
    etag: str  # sha256 (LFS) or git blob sha1, i.e. the blob's file name
    size: int

    @property
    def is_lfs(self) -> bool:
        return seed.is_lfs_etag(self.etag)

    @property
    def pointer_size(self) -> int:
        return len(seed.lfs_pointer(self.etag, self.size))

    @property
    def blob_id(self) -> str:
        """Git's id for what the repo stores: the pointer for LFS files, else the content."""
        if self.is_lfs:
            return seed.git_blob_sha1(seed.lfs_pointer(self.etag, self.size))
        return self.etag


@dataclass(frozen=True)
class Revision:
    repo_id: str
    commit: str
    files: Mapping[str, FileEntry]
    last_modified: float


@dataclass(frozen=True)
class _Tree:
    """Directory structure of a revision, in git's entry order."""

    children: Mapping[str, Sequence[str]]  # directory ("" = root) -> child paths
    dir_ids: Mapping[str, str]  # directory -> git tree id

    def walk(self, base: str, recursive: bool) -> Iterator[str]:
        for child in self.children.get(base, ()):
            yield child
            if recursive and child in self.dir_ids:
                yield from self.walk(child, recursive)


class RepoView:
    """Read-only view of one ``models--org--name`` folder, re-read on every call."""

    def __init__(self, root: Path, repo_id: str, folder: Path) -> None:
        self.root = root
        self.repo_id = repo_id
        self.folder = folder

    def resolve(self, revision: str) -> str:
        """Branch, tag, ``refs/pr/N`` or full commit id -> commit id."""
        name = revision
        for prefix in ("refs/heads/", "refs/tags/"):
            name = name.removeprefix(prefix)
        if seed.COMMIT_RE.fullmatch(name) and self._has_snapshot(name):
            return name
        commit = self._read_ref(name)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def revision(self, revision: str) -> Revision:
        commit = self.resolve(revision)
        snapshot = self._snapshot(commit)
        files = {}
        try:
            for rel, path in _walk(snapshot):
                entry = self._entry(rel, path)
                if entry is not None:
                    files[rel] = entry
            modified = snapshot.stat().st_mtime
        except FileNotFoundError:  # the revision was deleted from the cache meanwhile
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}") from None
        return Revision(self.repo_id, commit, files, modified)

    def file(self, commit: str, path: str) -> FileEntry | None:
        """Look up one file without scanning the whole snapshot (HEADs come in storms)."""
        snapshot = self._snapshot(commit)
        parent = snapshot
        for part in path.split("/")[:-1]:
            parent = parent / part
            if parent.is_symlink():  # _walk does not follow directory links either
                return None
        return self._entry(path, snapshot / path)

    def refs(self) -> list[tuple[str, str]]:
        """(name, commit) of every ref whose snapshot is present."""
        refs_dir = self.folder / "refs"
        found = []
        for name, _ in _walk(refs_dir) if refs_dir.is_dir() else ():
            if _CLIENT_TEMP_REF_RE.fullmatch(name):
                continue  # huggingface_hub mid-way through rewriting a ref
            commit = self._read_ref(name)
            if commit is not None:
                found.append((name, commit))
        return found

    def tags(self) -> frozenset[str]:
        return seed.read_tags(self.folder)

    def _snapshot(self, commit: str) -> Path:
        return self.folder / "snapshots" / commit

    def _has_snapshot(self, commit: str) -> bool:
        snapshot = self._snapshot(commit)
        return snapshot.is_dir() and _within(snapshot, self.root)

    def _read_ref(self, name: str) -> str | None:
        try:
            seed.validate_ref_name(name)
        except ValueError:
            return None
        ref = self.folder / "refs" / name
        if not ref.is_file() or not _within(ref, self.root):
            return None
        commit = ref.read_text(encoding="ascii", errors="replace").strip()
        ok = seed.COMMIT_RE.fullmatch(commit) and self._has_snapshot(commit)
        return commit if ok else None

    def _entry(self, rel: str, path: Path) -> FileEntry | None:
        """A servable file, or None for anything that is not one (or escapes the cache)."""
        if path.is_symlink():
            etag = self._blob_name(path)
            if etag is None:
                return None
        elif not path.is_file() or rel.endswith(".incomplete"):
            return None
        else:
            etag = None  # a copied file (HF_HUB_DISABLE_SYMLINKS): hash it below
        real = Path(os.path.realpath(path))
        if not real.is_file() or not _within(real, self.root):
            return None
        stat = real.stat()
        if etag is None:
            # A copy carries no etag; guess LFS-ness the way the Hub's defaults would.
            lfs = seed.default_lfs_rule(rel, stat.st_size)
            etag = _hash_copy(str(real), stat.st_size, stat.st_mtime_ns, stat.st_ino, lfs)
        return FileEntry(rel, real, etag, stat.st_size)

    def _blob_name(self, link: Path) -> str | None:
        """The etag a snapshot link names: its first hop must be ``blobs/<sha>`` of this repo.

        Judging by the name, not the content, is what the client does too, and it keeps
        a HEAD on a 50 GB file cheap. ``.incomplete`` files never match the pattern.
        """
        try:
            hop = Path(os.path.normpath(link.parent / os.readlink(link)))
        except OSError:  # removed since it was listed
            return None
        if hop.parent != Path(os.path.normpath(self.folder / "blobs")):
            return None
        name = hop.name
        return name if seed.is_lfs_etag(name) or seed.is_git_etag(name) else None


def open_repo(root: Path, repo_id: str) -> RepoView | None:
    try:
        folder = seed.repo_folder(root, repo_id)
    except ValueError:
        return None
    if not (folder / "snapshots").is_dir() or not _within(folder, root):
        return None
    return RepoView(root, repo_id, folder)


def _within(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(root)


def _walk(directory: Path, prefix: str = "") -> Iterator[tuple[str, Path]]:
    """Non-directory entries below ``directory``, sorted; directory symlinks are not followed."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if _SEED_TEMP_RE.fullmatch(entry.name):
            continue
        rel = prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), rel + "/")
        else:
            yield rel, Path(entry.path)


@functools.lru_cache(maxsize=4096)
def _hash_copy(path: str, size: int, mtime_ns: int, inode: int, lfs: bool) -> str:
    """Etag of a copied snapshot file; keyed by stat so an edited file is hashed again."""
    return seed.hash_file(Path(path), lfs, size)


def build_tree(files: Mapping[str, FileEntry]) -> _Tree:
    members: dict[str, dict[str, str | None]] = {"": {}}  # dir -> name -> blob id (None: dir)
    for path, entry in files.items():
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            parent = "/".join(parts[:depth])
            members.setdefault(parent, {})[parts[depth]] = None
            members.setdefault("/".join(parts[: depth + 1]), {})
        members["/".join(parts[:-1])][parts[-1]] = entry.blob_id
    dir_ids: dict[str, str] = {}
    # Deepest first, so every subdirectory's id exists before its parent needs it.
    for directory in sorted(members, key=_depth, reverse=True):
        dir_ids[directory] = _git_tree_id(directory, members[directory], dir_ids)
    children = {d: [_join(d, n) for n in _git_order(m)] for d, m in members.items()}
    dir_ids.pop("")
    return _Tree(children, dir_ids)


def _depth(directory: str) -> int:
    return directory.count("/") + 1 if directory else 0


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _git_order(members: Mapping[str, str | None]) -> list[str]:
    """Git sorts tree entries by name, comparing a directory as if it ended in '/'."""
    return sorted(members, key=lambda n: n.encode() + (b"/" if members[n] is None else b""))


def _git_tree_id(directory: str, members: Mapping[str, str | None], ids: Mapping[str, str]) -> str:
    """The real git tree id, so a folder's ``oid`` means what it means on the Hub."""
    records = []
    for name in _git_order(members):
        blob = members[name]
        mode, oid = (b"40000", ids[_join(directory, name)]) if blob is None else (b"100644", blob)
        records.append(mode + b" " + name.encode() + b"\0" + bytes.fromhex(oid))
    body = b"".join(records)
    return hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()


# --- rendering the Hub's JSON ------------------------------------------------------------


def _iso(timestamp: float) -> str:
    """The one format ``huggingface_hub.utils.parse_datetime`` accepts."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def model_info_json(rev: Revision, blobs: bool) -> JsonObject:
    info: JsonObject = {
        "id": rev.repo_id,
        "modelId": rev.repo_id,
        "sha": rev.commit,
        "lastModified": _iso(rev.last_modified),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": [_sibling_json(f, blobs) for f in rev.files.values()],
    }
    if "/" in rev.repo_id:
        info["author"] = rev.repo_id.split("/")[0]
    return info


def _sibling_json(entry: FileEntry, blobs: bool) -> JsonObject:
    sibling: JsonObject = {"rfilename": entry.path}
    if blobs:
        sibling.update(size=entry.size, blobId=entry.blob_id)
        if entry.is_lfs:
            lfs = {"sha256": entry.etag, "size": entry.size, "pointerSize": entry.pointer_size}
            sibling["lfs"] = lfs
    return sibling


def tree_entry_json(rev: Revision, tree: _Tree, path: str) -> JsonObject:
    if path in tree.dir_ids:
        return {"type": "directory", "oid": tree.dir_ids[path], "size": 0, "path": path}
    entry = rev.files[path]
    item: JsonObject = {"type": "file", "oid": entry.blob_id, "size": entry.size, "path": path}
    if entry.is_lfs:
        item["lfs"] = {"oid": entry.etag, "size": entry.size, "pointerSize": entry.pointer_size}
    return item


def refs_json(view: RepoView, include_prs: bool) -> JsonObject:
    tags = view.tags()
    groups: dict[str, list[JsonObject]] = {
        "branches": [],
        "converts": [],
        "tags": [],
        "pullRequests": [],
    }
    for name, commit in view.refs():
        group, ref = _classify_ref(name, tags)
        groups[group].append({"name": name, "ref": ref, "targetCommit": commit})
    if not include_prs:
        del groups["pullRequests"]  # the Hub only sends them when asked
    return cast(JsonObject, groups)


def _classify_ref(name: str, tags: frozenset[str]) -> tuple[str, str]:
    if name in tags:
        return "tags", f"refs/tags/{name}"
    if name.startswith("refs/pr/"):
        return "pullRequests", name
    if name.startswith("refs/convert/"):
        return "converts", name
    return "branches", f"refs/heads/{name}"


# --- ranges ----------------------------------------------------------------------------------


class _Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_inclusive)`` for a single byte range, None to send the whole file.

    Malformed or multi-range headers are ignored, as RFC 9110 allows; a well-formed
    range that starts past the end raises ``_Unsatisfiable`` (-> 416).
    """
    if header is None or not header.startswith("bytes=") or "," in header:
        return None
    match = re.fullmatch(r"(\d*)-(\d*)", header[len("bytes=") :].strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last N bytes
        if int(last) == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - int(last), 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _Unsatisfiable
    return start, min(int(last), size - 1) if last else size - 1


# --- fault injection ------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusFault:
    status: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DropFault:
    after_bytes: int = 0
    before_headers: bool = False


@dataclass(frozen=True)
class StallFault:
    seconds: float


@dataclass(frozen=True)
class CorruptFault:
    offset: int  # absolute offset in the file (or JSON body) whose byte is flipped


@dataclass(frozen=True, eq=False)
class HoldFault:
    """Send ``after_bytes`` of the body, then hold the response until released.

    A test can then act on a client whose transfer is at a known point (kill it, say)
    without racing it.  ``reached`` is set once the bytes are out; stopping the server
    ends the hold and closes the connection.
    """

    after_bytes: int
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()

    def wait_released(self, stopping: threading.Event) -> bool:
        """Block until released (True) or the server stops (False)."""
        self.reached.set()
        while not self.released.wait(POLL_INTERVAL):
            if stopping.is_set():
                return False
        return True


Fault = StatusFault | DropFault | StallFault | CorruptFault | HoldFault


@dataclass
class _Rule:
    method: str
    path_glob: str
    fault: Fault
    remaining: int | None  # None: every matching request

    def matches(self, method: str, path: str) -> bool:
        method_ok = self.method == "*" or self.method.upper() == method
        return method_ok and fnmatch.fnmatchcase(path, self.path_glob)


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request: at most one fault of each kind."""

    status: StatusFault | None = None
    drop: DropFault | None = None
    stall: StallFault | None = None
    corrupt: CorruptFault | None = None
    hold: HoldFault | None = None


NO_FAULTS = FaultPlan()


class Faults:
    """Thread-safe fault rules for tests; empty (and free) unless a test adds some.

    Rules match on method (``"*"`` for any) and a glob over the URL-decoded path
    (``fnmatch``: ``*`` also matches ``/``). Each rule applies to its next ``times``
    matching requests (``None``: forever); one request takes at most one rule per kind,
    so a stall can be combined with a drop, for instance.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def fail(
        self,
        path_glob: str,
        status: int = 500,
        *,
        method: str = "*",
        times: int | None = 1,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with ``status`` (and ``Retry-After`` when given) instead of the resource."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        self._add(method, path_glob, StatusFault(status, tuple(extra.items())), times)

    def drop(
        self,
        path_glob: str,
        *,
        after_bytes: int = 0,
        before_headers: bool = False,
        method: str = "GET",
        times: int | None = 1,
    ) -> None:
        """Close the connection after ``after_bytes`` of body (or before any response)."""
        self._add(method, path_glob, DropFault(after_bytes, before_headers), times)

    def stall(
        self, path_glob: str, seconds: float, *, method: str = "*", times: int | None = 1
    ) -> None:
        """Wait ``seconds`` before answering (cut short when the server stops)."""
        self._add(method, path_glob, StallFault(seconds), times)

    def corrupt(
        self, path_glob: str, *, offset: int = 0, method: str = "GET", times: int | None = 1
    ) -> None:
        """Flip the byte at ``offset`` of the body; headers stay those of the real file."""
        self._add(method, path_glob, CorruptFault(offset), times)

    def hold(
        self, path_glob: str, *, after_bytes: int, method: str = "GET", times: int | None = 1
    ) -> HoldFault:
        """Pause the body after ``after_bytes``; the returned handle's ``release()`` resumes it."""
        fault = HoldFault(after_bytes)
        self._add(method, path_glob, fault, times)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> int:
        """Rules not used up yet; a test can assert its faults actually fired."""
        with self._lock:
            return len(self._rules)

    def take(self, method: str, path: str) -> FaultPlan:
        if not self._rules:  # the production path: no lock, no allocation
            return NO_FAULTS
        found: dict[type, Fault] = {}
        with self._lock:
            for rule in self._rules:
                kind = type(rule.fault)
                if kind not in found and rule.matches(method, path):
                    found[kind] = rule.fault
                    rule.remaining = None if rule.remaining is None else rule.remaining - 1
            self._rules = [r for r in self._rules if r.remaining != 0]
        return FaultPlan(
            status=cast("StatusFault | None", found.get(StatusFault)),
            drop=cast("DropFault | None", found.get(DropFault)),
            stall=cast("StallFault | None", found.get(StallFault)),
            corrupt=cast("CorruptFault | None", found.get(CorruptFault)),
            hold=cast("HoldFault | None", found.get(HoldFault)),
        )

    def _add(self, method: str, path_glob: str, fault: Fault, times: int | None) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        with self._lock:
            self._rules.append(_Rule(method, path_glob, fault, times))


@dataclass(frozen=True)
class RequestRecord:
    """One served request, for tests to inspect."""

    method: str
    path: str  # URL-decoded, without the query
    query: str
    range: str | None
    status: int  # 0 when the connection was dropped before any response
    bytes_sent: int  # body bytes only
    dropped: bool
    seconds: float


@dataclass
class _Context:
    """State shared by the server object, its handlers and HubServer."""

    cache_dir: Path
    verbose: bool
    faults: Faults = field(default_factory=Faults)
    tree_page_size: int = TREE_PAGE_SIZE
    stopping: threading.Event = field(default_factory=threading.Event)
    records: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))
    records_changed: threading.Condition = field(default_factory=threading.Condition)
    in_flight: int = 0

    def begin(self) -> None:
        with self.records_changed:
            self.in_flight += 1

    def record(self, record: RequestRecord) -> None:
        with self.records_changed:
            self.records.append(record)
            self.in_flight -= 1
            self.records_changed.notify_all()

    def settled_records(self, timeout: float) -> list[RequestRecord]:
        """The log once no request is mid-way through its handler.

        A client can hold a complete response before the handler thread has logged
        it, so reading the log right after a call would race without this wait.
        """
        with self.records_changed:
            self.records_changed.wait_for(lambda: self.in_flight == 0, timeout)
            return list(self.records)

    def clear_records(self, timeout: float) -> None:
        """Forget the log, once no request is mid-way through its handler (waiting at most
        ``timeout``): one logged after the clear would pass for one that followed it."""
        with self.records_changed:
            self.records_changed.wait_for(lambda: self.in_flight == 0, timeout)
            self.records.clear()


# --- response bodies -------------------------------------------------------------------------


class _Body(Protocol):
    length: int
    origin: int  # offset of the body's first byte in the resource (for corrupt offsets)

    def send(self, sock: socket.socket, start: int, count: int) -> int: ...

    def byte_at(self, index: int) -> int: ...


class _BytesBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)
        self.origin = 0

    def send(self, sock: socket.socket, start: int, count: int) -> int:
        sock.sendall(memoryview(self.data)[start : start + count])
        return count

    def byte_at(self, index: int) -> int:
        return self.data[index]


class _FileBody:
    """A slice of an open file, sent with sendfile(2): no copies through user space."""

    def __init__(self, stream: BinaryIO, offset: int, length: int) -> None:
        self.stream = stream
        self.origin = offset
        self.length = length

    def send(self, sock: socket.socket, start: int, count: int) -> int:
        return sock.sendfile(self.stream, self.origin + start, count)

    def byte_at(self, index: int) -> int:
        return os.pread(self.stream.fileno(), 1, self.origin + index)[0]


class _ShortBody(Exception):
    """The file shrank while being sent; the connection cannot be reused."""


class _HoldAborted(ConnectionError):
    """The server stopped during a held response: close the connection mid-body."""


# --- the request handler ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    server_version = "modelsync-serve"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = IDLE_TIMEOUT

    _status = 0
    _sent = 0
    _dropped = False

    @property
    def ctx(self) -> _Context:
        return cast(_Server, self.server).context

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request, unknown method) in the Hub's format."""
        self.close_connection = True
        phrase = HTTPStatus(code).phrase
        error = HubError(code, re.sub(r"[^A-Za-z]", "", phrase), message or phrase)
        self._send_error("HEAD" if self.command == "HEAD" else "GET", error, NO_FAULTS)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by one line per request in ``_finish``, with the bytes actually sent."""

    def log_message(self, format: str, *args: object) -> None:
        if self.ctx.verbose:
            super().log_message(format, *args)

    # The request cycle: read, apply faults, route, record.

    def _serve(self, method: str) -> None:
        started = time.monotonic()
        self.ctx.begin()  # from here on, _finish must run exactly once
        self._status, self._sent, self._dropped = 0, 0, False
        path, query, plan = self.path, "", NO_FAULTS
        try:
            try:
                target = urlsplit(self.path)
                path, query = unquote(target.path), target.query
                body = self._read_body()
                plan = self.ctx.faults.take(method, path)
                if not self._fault_answered(method, plan):
                    self._route(method, target.path, parse_qs(query), body, plan)
            except HubError as error:
                self._send_error(method, error, plan)
        except Exception as error:  # a handler must answer or close, never hang the client
            self._fail(method, error)
        finally:
            self._finish(method, path, query, started)

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

    def _fault_answered(self, method: str, plan: FaultPlan) -> bool:
        """Apply the faults that replace a normal answer; True if the request is done."""
        if plan.stall is not None:
            self.ctx.stopping.wait(plan.stall.seconds)
        if plan.drop is not None and plan.drop.before_headers:
            self._dropped = self.close_connection = True
            return True
        if plan.status is not None:
            fault = plan.status
            message = f"injected fault: HTTP {fault.status}"
            headers = [("X-Error-Message", message), *fault.headers]
            self._send_json(method, fault.status, {"error": message}, plan, headers)
            return True
        return False

    def _fail(self, method: str, error: Exception) -> None:
        self.close_connection = True
        if isinstance(error, (ConnectionError, TimeoutError, _ShortBody)):
            return  # the peer left, or the file changed under us: nothing to answer
        traceback.print_exception(error, file=sys.stderr)
        if self._status == 0:
            with contextlib.suppress(OSError):  # the answer is best effort; closing is not
                self._send_error(method, HubError(500, "InternalError", str(error)), NO_FAULTS)

    def _finish(self, method: str, path: str, query: str, started: float) -> None:
        record = RequestRecord(
            method=method,
            path=path,
            query=query,
            range=self.headers.get("Range"),
            status=self._status,
            bytes_sent=self._sent,
            dropped=self._dropped,
            seconds=time.monotonic() - started,
        )
        self.ctx.record(record)
        if self.ctx.verbose:
            ms = record.seconds * 1000
            line = f'{self.client_address[0]} "{method} {self.path}" {self._status}'
            print(f"{line} {self._sent}B {ms:.1f}ms", file=sys.stderr, flush=True)

    # Routing. Segments stay URL-quoted until split, because a revision arrives
    # as one segment with its slashes encoded (``refs%2Fpr%2F1``).

    def _route(
        self,
        method: str,
        raw_path: str,
        query: dict[str, list[str]],
        body: bytes,
        plan: FaultPlan,
    ) -> None:
        segments = raw_path.split("/")[1:]
        if segments == ["api", "agent-harnesses"]:
            self._require(method, "GET", "HEAD")
            self._send_json(method, 200, _EMPTY_REGISTRY, plan)
        elif segments[:2] == ["api", "models"]:
            self._route_api(method, segments[2:], query, body, plan)
        elif "resolve" in segments[1:3]:
            self._route_resolve(method, segments, plan)
        else:
            raise HubError(501, "NotImplemented", f"modelsync serve does not serve {raw_path}")

    def _route_api(
        self,
        method: str,
        segments: list[str],
        query: dict[str, list[str]],
        body: bytes,
        plan: FaultPlan,
    ) -> None:
        view, tail = self._locate(segments, marker=None)
        if not tail or tail[0] == "revision":
            self._require(method, "GET", "HEAD")
            revision = unquote("/".join(tail[1:])) if tail else "main"
            rev = view.revision(revision)
            self._send_json(method, 200, model_info_json(rev, _flag(query, "blobs")), plan)
        elif tail[0] == "tree" and len(tail) >= 2:
            self._require(method, "GET", "HEAD")
            self._send_tree(method, view, tail[1], unquote("/".join(tail[2:])), query, plan)
        elif tail[0] == "paths-info" and len(tail) >= 2:
            self._require(method, "POST")
            rev = view.revision(unquote("/".join(tail[1:])))
            self._send_json(method, 200, self._paths_info(rev, body), plan)
        elif tail == ["refs"]:
            self._require(method, "GET", "HEAD")
            payload = refs_json(view, _flag(query, "include_prs"))
            self._send_json(method, 200, payload, plan)
        else:
            raise HubError(501, "NotImplemented", f"modelsync serve does not serve {self.path}")

    def _route_resolve(self, method: str, segments: list[str], plan: FaultPlan) -> None:
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
        self._send_file(method, entry, commit, plan)

    def _locate(self, segments: list[str], marker: str | None) -> tuple[RepoView, list[str]]:
        """Find the repo named by the first one or two segments (``org/name`` or ``name``).

        With a ``marker`` ("resolve"), the segment after the repo id must be it.
        """
        root = self.ctx.cache_dir.resolve()
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
        self,
        method: str,
        view: RepoView,
        revision: str,
        base: str,
        query: dict[str, list[str]],
        plan: FaultPlan,
    ) -> None:
        rev = view.revision(unquote(revision))
        tree = build_tree(rev.files)
        if base and base not in tree.dir_ids:
            message = f"{base} is not a directory at revision {rev.commit}"
            raise HubError(404, "EntryNotFound", message, commit=rev.commit)
        paths = list(tree.walk(base, _flag(query, "recursive")))
        start = _cursor(query)
        size = self.ctx.tree_page_size
        page = [tree_entry_json(rev, tree, p) for p in paths[start : start + size]]
        headers = []
        if start + size < len(paths):
            next_page = self._next_page(rev, base, query, start + size)
            headers.append(("Link", f'<{next_page}>; rel="next"'))
        self._send_json(method, 200, page, plan, headers)

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

    def _paths_info(self, rev: Revision, body: bytes) -> list[JsonObject]:
        tree = build_tree(rev.files)
        found = []
        for path in dict.fromkeys(_requested_paths(self.headers.get("Content-Type"), body)):
            if path in rev.files or path in tree.dir_ids:
                found.append(tree_entry_json(rev, tree, path))
        return found  # missing paths are silently left out, as the Hub does

    def _send_file(self, method: str, entry: FileEntry, commit: str, plan: FaultPlan) -> None:
        with entry.blob.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
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
            except _Unsatisfiable:
                message = f"range {self.headers.get('Range')} outside a {size}-byte file"
                unsatisfied = [*headers[1:], ("Content-Range", f"bytes */{size}")]
                raise HubError(416, "RangeNotSatisfiable", message, headers=unsatisfied) from None
            start, length = (0, size) if span is None else (span[0], span[1] - span[0] + 1)
            headers.append(("Content-Length", str(length)))
            if span is not None:
                headers.append(("Content-Range", f"bytes {span[0]}-{span[1]}/{size}"))
            self._start(206 if span is not None else 200, headers)
            if method == "GET":
                self._send_body(_FileBody(stream, start, length), plan)

    def _send_json(
        self,
        method: str,
        status: int,
        payload: object,
        plan: FaultPlan,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        data = json.dumps(payload).encode()
        content = [("Content-Type", "application/json; charset=utf-8")]
        self._start(status, [*content, ("Content-Length", str(len(data))), *headers])
        if method != "HEAD":
            self._send_body(_BytesBody(data), plan)

    def _send_error(self, method: str, error: HubError, plan: FaultPlan) -> None:
        headers = [("X-Error-Code", error.code), ("X-Error-Message", _header_safe(error.message))]
        if error.commit is not None:
            headers.append(("X-Repo-Commit", error.commit))
        headers.extend(error.headers)
        self._send_json(method, error.status, {"error": error.message}, plan, headers)

    def _start(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:  # tell the client not to reuse this connection
            self.send_header("Connection", "close")
        self.end_headers()
        self._status = status

    def _send_body(self, body: _Body, plan: FaultPlan) -> None:
        """Send the body, honouring a drop (stop after N bytes), corrupt (flip one byte)
        or hold (pause after N bytes)."""
        limit = body.length if plan.drop is None else min(body.length, plan.drop.after_bytes)
        flip = None if plan.corrupt is None else plan.corrupt.offset - body.origin
        position = 0
        if flip is not None and 0 <= flip < limit:
            self._send_until(body, 0, flip, plan.hold)
            self.connection.sendall(bytes([body.byte_at(flip) ^ 0xFF]))
            self._sent += 1
            position = flip + 1
        self._send_until(body, position, limit, plan.hold)
        if limit < body.length:
            # Closing after a short body is exactly what a reset mid-transfer looks like.
            self._dropped = self.close_connection = True

    def _send_until(self, body: _Body, start: int, end: int, hold: HoldFault | None) -> None:
        """Send bytes ``start`` to ``end``, pausing at the hold point if it lies in between."""
        if hold is not None and start <= hold.after_bytes <= end:
            self._send_span(body, start, hold.after_bytes - start)
            if not hold.wait_released(self.ctx.stopping):
                self._dropped = True
                raise _HoldAborted
            start = hold.after_bytes
        self._send_span(body, start, end - start)

    def _send_span(self, body: _Body, start: int, count: int) -> None:
        if count <= 0:
            return
        sent = body.send(self.connection, start, count)
        self._sent += sent
        if sent < count:
            raise _ShortBody


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


def _cursor(query: Mapping[str, list[str]]) -> int:
    value = query.get("cursor", ["0"])[-1]
    if not value.isdigit():
        raise HubError(400, "BadRequest", f"invalid cursor {value!r}")
    return int(value)


def _repo_path(path: str) -> str:
    try:
        return seed.validate_repo_path(path)
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


# --- the server ------------------------------------------------------------------------------


_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not make stop() hang

    def __init__(self, address: tuple[str, int], context: _Context) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

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

    def __init__(
        self,
        cache_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._context = _Context(cache_dir=Path(cache_dir), verbose=verbose)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def cache_dir(self) -> Path:
        return self._context.cache_dir

    @property
    def faults(self) -> Faults:
        return self._context.faults

    @property
    def requests(self) -> list[RequestRecord]:
        """Requests served so far, oldest first (waits briefly for ones still finishing)."""
        return self._context.settled_records(timeout=SETTLE_TIMEOUT)

    def clear_requests(self) -> None:
        """Forget the requests served so far (ones still finishing are waited for first)."""
        self._context.clear_records(timeout=SETTLE_TIMEOUT)

    @property
    def tree_page_size(self) -> int:
        return self._context.tree_page_size

    @tree_page_size.setter
    def tree_page_size(self, size: int) -> None:
        if size < 1:
            raise ValueError("page size must be positive")
        self._context.tree_page_size = size

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = cast(tuple[str, int], self._server.server_address)[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> HubServer:
        if self._server is not None:
            return self
        self._context.stopping.clear()
        self._server = _Server((self.host, self.port), self._context)
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
        self._context.stopping.set()  # cut stalls short
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

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
) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` gets the URL once the port is bound."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with HubServer(cache_dir, host, port, verbose=verbose) as server:
            if on_ready is not None:
                on_ready(server.url)
            while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(cache_dir: str, host: str, port: int, *, verbose: bool = False) -> ExitCode:
    """Entry point of ``reconcile serve``; returns the process exit code."""
    root = Path(cache_dir).expanduser()
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return ExitCode.ERROR

    def announce(url: str) -> None:
        print(f"Serving {root} at {url}", flush=True)

    try:
        serve_forever(root, host, port, verbose=verbose, on_ready=announce)
    except OSError as error:  # typically the port is taken
        print(f"error: cannot serve on {host}:{port}: {error}", file=sys.stderr)
        return ExitCode.ERROR
    return ExitCode.OK

"""The mirror with faults on demand and a log of every request: the tests' hub server.

:class:`FaultInjectingHubServer` is :class:`controller.mirror.server.HubServer` with a handler
that, before answering a request the mirror's own way, looks up the faults a test added for
it (answer with an error status, stall, close the connection before the headers or mid-body,
flip one byte, hold the body at a known point until released), and that logs each request
once it is done, with what actually went out.  The mirror itself knows none of this.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import SplitResult, unquote, urlsplit

from controller.mirror.documents import encode
from controller.mirror.handler import TREE_PAGE_SIZE, Body, BytesBody, FileBody, HubRequestHandler
from controller.mirror.server import HubServer
from tests.support.gates import Gates

MAX_RECORDS = 10_000  # the request log is bounded so a long test does not grow it forever
POLL_INTERVAL = 0.1  # how quickly a held response notices that the server stops
SETTLE_TIMEOUT = 5.0  # longest ``requests`` waits for in-flight requests to be logged


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


@dataclass(frozen=True)
class ThrottleFault:
    """Send the body at about ``bytes_per_second``: a slow hub, whose client spends its time
    blocked in reads."""

    bytes_per_second: int


@dataclass(frozen=True)
class IgnoreRangeFault:
    """Answer as a server without range support: the whole file, 200, whatever was asked."""


@dataclass(frozen=True)
class EtagFault:
    """Send ``etag`` as the response's ETag: the file changed, as far as a client can tell."""

    etag: str


@dataclass(frozen=True)
class RewriteFault:
    """Answer with ``edit`` applied to the JSON document the hub would send: a hub whose
    answers lack or garble fields."""

    edit: Callable[[Any], Any]


Fault = (
    RewriteFault
    | StatusFault
    | DropFault
    | StallFault
    | CorruptFault
    | HoldFault
    | ThrottleFault
    | IgnoreRangeFault
    | EtagFault
)


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
    throttle: ThrottleFault | None = None
    ignore_range: IgnoreRangeFault | None = None
    etag: EtagFault | None = None
    rewrite: RewriteFault | None = None


NO_FAULTS = FaultPlan()


class Faults:
    """Thread-safe fault rules; empty unless a test adds some.

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
        """Flip the byte at ``offset`` of the file (of the document, for JSON), whatever range
        a response covers: no response carries the right byte there, and one that does not
        cover it goes out intact.  Headers stay those of the real file."""
        self._add(method, path_glob, CorruptFault(offset), times)

    def hold(
        self, path_glob: str, *, after_bytes: int, method: str = "GET", times: int | None = 1
    ) -> HoldFault:
        """Pause the body after ``after_bytes``; the returned handle's ``release()`` resumes it."""
        fault = HoldFault(after_bytes)
        self._add(method, path_glob, fault, times)
        return fault

    def throttle(
        self,
        path_glob: str,
        bytes_per_second: int,
        *,
        method: str = "GET",
        times: int | None = 1,
    ) -> None:
        """Send the body at about ``bytes_per_second`` (ten spans a second)."""
        if bytes_per_second < 10:
            raise ValueError("a throttle sends at least 10 bytes a second")
        self._add(method, path_glob, ThrottleFault(bytes_per_second), times)

    def ignore_range(self, path_glob: str, *, method: str = "GET", times: int | None = 1) -> None:
        """Answer a ranged request with the whole file (200), as a server without ranges."""
        self._add(method, path_glob, IgnoreRangeFault(), times)

    def change_etag(
        self, path_glob: str, etag: str = '"changed"', *, method: str = "GET", times: int | None = 1
    ) -> None:
        """Send another ETag with the (unchanged) content: the file changed between requests."""
        self._add(method, path_glob, EtagFault(etag), times)

    def rewrite(
        self,
        path_glob: str,
        edit: Callable[[Any], Any],
        *,
        method: str = "GET",
        times: int | None = None,
    ) -> None:
        """Send ``edit(document)`` instead of the JSON document of the answer."""
        self._add(method, path_glob, RewriteFault(edit), times)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> int:
        """Rules not used up yet; a test can assert its faults actually fired."""
        with self._lock:
            return len(self._rules)

    def take(self, method: str, path: str) -> FaultPlan:
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
            throttle=cast("ThrottleFault | None", found.get(ThrottleFault)),
            ignore_range=cast("IgnoreRangeFault | None", found.get(IgnoreRangeFault)),
            etag=cast("EtagFault | None", found.get(EtagFault)),
            rewrite=cast("RewriteFault | None", found.get(RewriteFault)),
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
    started: float = 0.0  # time.monotonic() when the request arrived


class RequestLog:
    """The requests served, oldest first, and how many are still being answered."""

    def __init__(self) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=MAX_RECORDS)
        self._changed = threading.Condition()
        self._in_flight = 0

    def begin(self) -> None:
        with self._changed:
            self._in_flight += 1

    def record(self, record: RequestRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._in_flight -= 1
            self._changed.notify_all()

    def settled(self, timeout: float) -> list[RequestRecord]:
        """The log once no request is mid-way through its handler.

        A client can hold a complete response before the handler thread has logged
        it, so reading the log right after a call would race without this wait.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == 0, timeout)
            return list(self._records)

    def clear(self, timeout: float) -> None:
        """Forget the log, once no request is mid-way through its handler (waiting at most
        ``timeout``): one logged after the clear would pass for one that followed it."""
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == 0, timeout)
            self._records.clear()


class FaultInjectingHandler(HubRequestHandler):
    """The mirror's handler, with the faults its server's rules name applied to each request."""

    plan = NO_FAULTS
    dropped = False

    @property
    def hub(self) -> FaultInjectingHubServer:
        return cast(FaultInjectingHubServer, self.mirror)

    @property  # type: ignore[override]
    def tree_page_size(self) -> int:
        return self.hub.tree_page_size

    def serve(self, method: str) -> None:
        self.plan, self.dropped = NO_FAULTS, False
        asked = self.headers.get("Range")  # logged as asked, even when a fault ignores it
        self.hub.log.begin()  # from here on, the record below must be written exactly once
        try:
            super().serve(method)
        finally:
            path, query = _path_and_query(self.path)
            self.hub.log.record(
                RequestRecord(
                    method=method,
                    path=path,
                    query=query,
                    range=asked,
                    status=self.status_sent,
                    bytes_sent=self.bytes_sent,
                    dropped=self.dropped,
                    seconds=time.monotonic() - self.started,
                    started=self.started,
                )
            )
            # An error http.server answers before the next request must not inherit faults.
            self.plan = NO_FAULTS

    def respond(self, method: str, target: SplitResult, body: bytes) -> None:
        """Apply the faults that replace a normal answer, else answer as the mirror does."""
        self.plan = plan = self.hub.faults.take(method, unquote(target.path))
        refusal = self.hub.gates.refusal(unquote(target.path), self.headers.get("Authorization"))
        if refusal is not None:
            status, message = refusal
            headers = [("X-Error-Code", "GatedRepo"), ("X-Error-Message", message)]
            self.send_json(method, status, {"error": message}, headers)
            return
        if plan.ignore_range is not None:
            del self.headers["Range"]
        if plan.stall is not None:
            self.hub.stopping.wait(plan.stall.seconds)
        if plan.drop is not None and plan.drop.before_headers:
            self.dropped = self.close_connection = True
            return
        if plan.status is not None:
            fault = plan.status
            message = f"injected fault: HTTP {fault.status}"
            headers = [("X-Error-Message", message), *fault.headers]
            self.send_json(method, fault.status, {"error": message}, headers)
            return
        super().respond(method, target, body)

    def start_response(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        fault = self.plan.etag
        if fault is not None:
            headers = [(k, fault.etag if k == "ETag" else v) for k, v in headers]
        super().start_response(status, headers)

    def send_document(
        self,
        method: str,
        status: int,
        data: bytes,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        # Every JSON answer passes here, the ones the mirror keeps already encoded included.
        rewrite = self.plan.rewrite
        if rewrite is not None and status < 400:
            data = encode(rewrite.edit(json.loads(data)))
        super().send_document(method, status, data, headers)

    def send_body(self, body: Body) -> None:
        """Send the body, honouring a drop (stop after N bytes), corrupt (flip one byte)
        or hold (pause after N bytes)."""
        plan = self.plan
        limit = body.length if plan.drop is None else min(body.length, plan.drop.after_bytes)
        flip = None if plan.corrupt is None else plan.corrupt.offset - _origin(body)
        position = 0
        if flip is not None and 0 <= flip < limit:
            self._send_until(body, 0, flip)
            self.connection.sendall(bytes([_byte_at(body, flip) ^ 0xFF]))
            self.bytes_sent += 1
            position = flip + 1
        self._send_until(body, position, limit)
        if limit < body.length:
            # Closing after a short body is exactly what a reset mid-transfer looks like.
            self.dropped = self.close_connection = True

    def _send_until(self, body: Body, start: int, end: int) -> None:
        """Send bytes ``start`` to ``end``, pausing at the hold point if it lies in between."""
        hold = self.plan.hold
        if hold is not None and start <= hold.after_bytes <= end:
            self._send_paced(body, start, hold.after_bytes - start)
            if not hold.wait_released(self.hub.stopping):
                self.dropped = True
                # A ConnectionError: the mirror closes the connection mid-body, quietly.
                raise ConnectionAbortedError("the hub stopped during a held response")
            start = hold.after_bytes
        self._send_paced(body, start, end - start)

    def _send_paced(self, body: Body, start: int, count: int) -> None:
        """Send ``count`` bytes from ``start``, at the throttle's pace when there is one."""
        throttle = self.plan.throttle
        if throttle is None:
            self.send_span(body, start, count)
            return
        span = throttle.bytes_per_second // 10
        end = start + count
        while start < end:
            self.send_span(body, start, min(span, end - start))
            start += span
            # The pace of a slow link, cut short when the server stops.
            if self.hub.stopping.wait(0.1):
                self.dropped = True
                raise ConnectionAbortedError("the hub stopped during a throttled response")


class FaultInjectingHubServer(HubServer):
    """A :class:`HubServer` whose requests a test can fault, and whose requests it can read.

    ``tree_page_size`` may be lowered, while it runs, to make short listings paginate.
    """

    handler_class = FaultInjectingHandler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = Faults()
        self.gates = Gates()
        self.log = RequestLog()
        self.stopping = threading.Event()  # cuts stalls and holds short
        self.tree_page_size = TREE_PAGE_SIZE

    @property
    def requests(self) -> list[RequestRecord]:
        """Requests served so far, oldest first (waits briefly for ones still finishing)."""
        return self.log.settled(timeout=SETTLE_TIMEOUT)

    def clear_requests(self) -> None:
        """Forget the requests served so far (ones still finishing are waited for first)."""
        self.log.clear(timeout=SETTLE_TIMEOUT)

    def start(self) -> FaultInjectingHubServer:
        self.stopping.clear()
        super().start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        super().stop()


def _path_and_query(raw: str) -> tuple[str, str]:
    try:
        target = urlsplit(raw)
    except ValueError:  # not even a URL: logged as it came
        return raw, ""
    return unquote(target.path), target.query


def _origin(body: Body) -> int:
    """Where the body starts in the resource, so a corrupt offset is one into the file."""
    return body.offset if isinstance(body, FileBody) else 0


def _byte_at(body: Body, index: int) -> int:
    if isinstance(body, BytesBody):
        return body.data[index]
    file_body = cast(FileBody, body)
    return os.pread(file_body.stream.fileno(), 1, file_body.offset + index)[0]

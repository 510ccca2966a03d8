"""The controller's event stream: phase changes, transfer progress, passes, manifest loads.

One in-process :class:`EventBus` carries them from the loop to every listener: the HTTP
API's ``GET /v1/events`` (server-sent events, :mod:`controller.api.app`), the log, a
terminal.  Publishing never blocks the loop: each subscriber has a bounded queue, and one
that falls that far behind is dropped (its stream ends; an SSE client reconnects and reads
the current state afresh) rather than slowing downloads down or growing without bound.

:class:`Follower` is the other end: it reads a controller's stream over HTTP, which is how
:meth:`controller.api.client.ModelAvailability.subscribe` delivers the seed's status and
progress callbacks to applications.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from controller.system.clock import utcnow

log = logging.getLogger("modelsync.events")

SUBSCRIBER_QUEUE = 1024  # events a subscriber may lag behind before it is dropped
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often: proxies keep the stream, we see a gone client
READ_TIMEOUT = 60.0  # seconds a follower waits for a line before it reconnects


class EventKind(str, Enum):
    PHASE = "phase"  # a model's phase, reason, commit or update_available changed
    PROGRESS = "progress"  # a model's transfer advanced (bytes, throughput, ETA)
    RECONCILE = "reconcile"  # a pass started or finished
    MANIFEST = "manifest"  # the manifests were (re)loaded, or an edit was rejected
    HEALTH = "health"  # a health check finished
    STATUS = "status"  # the whole current status; the first event of every stream


@dataclass(frozen=True)
class Event:
    kind: EventKind
    data: Mapping[str, Any]
    id: int = 0
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.value, "at": self.at.isoformat(), **self.data}

    def to_sse(self) -> bytes:
        """The event as one server-sent event frame."""
        payload = json.dumps(self.to_json(), separators=(",", ":"))
        return f"id: {self.id}\nevent: {self.kind.value}\ndata: {payload}\n\n".encode()


class Subscription:
    """One subscriber's queue; iterate with :meth:`get` until it returns None after close.

    ``wake``, when given, is called (in the publishing thread) whenever an event is queued or
    the subscription ends: an asyncio reader waits for it instead of holding a thread in
    :meth:`get`.
    """

    def __init__(
        self,
        bus: EventBus,
        kinds: frozenset[EventKind] | None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self.kinds = kinds
        self._wake = wake
        self._queue: deque[Event] = deque()
        self._ready = threading.Condition()
        self.closed = False

    def offer(self, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds:
            return
        with self._ready:
            if self.closed:
                return
            if len(self._queue) >= SUBSCRIBER_QUEUE:
                self.closed = True  # too far behind: end its stream rather than block
            else:
                self._queue.append(event)
            self._ready.notify_all()
        self._notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event; None after ``timeout`` seconds or once closed and drained."""
        with self._ready:
            if not self._queue and not self.closed:
                self._ready.wait(timeout)
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        self._bus.unsubscribe(self)
        self.end()

    def end(self) -> None:
        """No more events: :meth:`get` returns what is queued, then None."""
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None:
            try:
                self._wake()
            except Exception:  # a reader's bug must not stop the loop that publishes
                log.exception("event subscriber's wake-up failed")

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self._next_id = 1

    def publish(self, kind: EventKind, data: Mapping[str, Any]) -> Event:
        with self._lock:
            event = Event(kind, dict(data), self._next_id)
            self._next_id += 1
            subscribers = list(self._subscribers)
            listeners = list(self._listeners)
        for subscriber in subscribers:
            subscriber.offer(event)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the loop that publishes
                log.exception("event listener failed on %s", event.kind.value)
        return event

    def subscribe(
        self, kinds: Iterable[EventKind] | None = None, *, wake: Callable[[], None] | None = None
    ) -> Subscription:
        subscription = Subscription(self, None if kinds is None else frozenset(kinds), wake)
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        with self._lock:
            return len(self._subscribers)

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` in the publishing thread for every event (keep it quick)."""
        with self._lock:
            self._listeners.append(listener)

    def close(self) -> None:
        """End every subscriber's stream (the controller is stopping)."""
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for subscriber in subscribers:
            subscriber.end()


# --------------------------------------------------------------------------- the client side


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event name, data) of each server-sent event in ``lines`` (without line endings)."""
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith(":"):
            continue  # a comment: the server's keep-alive
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


class Follower:
    """A background reader of a controller's event stream; reconnects until closed."""

    def __init__(
        self,
        url: str,
        callback: Callable[[dict[str, Any]], None],
        *,
        kinds: Iterable[EventKind] | None = None,
        token: str | None = None,
        reconnect_seconds: float = 1.0,
    ) -> None:
        query = "" if kinds is None else "?kinds=" + ",".join(k.value for k in kinds)
        self.url = url.rstrip("/") + "/v1/events" + query
        self.callback = callback
        self.token = token
        self.reconnect_seconds = reconnect_seconds
        self.connected = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelsync-events", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop delivering events (the reader thread ends at its next keep-alive)."""
        self._closed.set()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        # Imported by the follower's thread: the many users of this module's events that
        # never follow a stream start without httpx.
        import httpx2

        while not self._closed.is_set():
            try:
                self._read_stream()
            except (httpx2.HTTPError, OSError) as e:
                log.debug("event stream %s: %s", self.url, e)
            self.connected.clear()
            self._closed.wait(self.reconnect_seconds)

    def _read_stream(self) -> None:
        import httpx2

        headers = {"Accept": "text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # The read timeout outlasts the server's keep-alive comments several times over: a
        # stream that stays silent that long is dead, and is reconnected.
        with httpx2.stream("GET", self.url, headers=headers, timeout=READ_TIMEOUT) as response:
            response.raise_for_status()
            self.connected.set()
            for _, data in parse_sse(response.iter_lines()):
                if self._closed.is_set():
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                try:
                    self.callback(event)
                except Exception:
                    log.exception("event callback failed")

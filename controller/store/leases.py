"""Leases: "this model is in use right now", seen by every process through the state store.

An application holds a lease while it loads or runs a model (``with client.use(name):``,
``reconcile lease NAME -- CMD``, or ``POST /v1/models/{name}/lease``).  While a lease is live,
retention never deletes the model and an update never switches its ref; the plan says so.

A lease must not outlive its holder, or a crashed application would pin a model forever.
So a lease is *live* only while both hold:

- its heartbeat is younger than its ttl (the holder renews it every ttl/3), and
- when it names a process on this host, that process still exists.

The second rule ends the lease of a process killed with ``kill -9`` at once; the first covers
everything else (another host sharing the state directory, an HTTP client that stopped
renewing, a pid that was reused).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from types import TracebackType

from controller.domain import Lease
from controller.store.state import StateStore
from controller.system.processes import process_alive

log = logging.getLogger("modelsync.leases")

HOST = socket.gethostname()
DEFAULT_TTL_SECONDS = 60.0

Clock = Callable[[], datetime]


def is_live(lease: Lease, now: datetime) -> bool:
    if lease.heartbeat_at + timedelta(seconds=lease.ttl_seconds) < now:
        return False
    if lease.pid is not None and lease.host == HOST:
        return process_alive(lease.pid)
    return True


def live_by_model(leases: Iterable[Lease], now: datetime) -> dict[str, tuple[Lease, ...]]:
    found: dict[str, list[Lease]] = {}
    for lease in leases:
        if is_live(lease, now):
            found.setdefault(lease.model, []).append(lease)
    return {model: tuple(held) for model, held in sorted(found.items())}


def new_lease(
    model: str,
    now: datetime,
    *,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    pid: int | None = None,
    holder: str | None = None,
    lease_id: str | None = None,
) -> Lease:
    """A lease held by ``pid`` on this host (``None``: by whoever keeps renewing it)."""
    if not 0 < ttl_seconds < float("inf"):
        raise ValueError(f"a lease's ttl must be a positive number of seconds, got {ttl_seconds}")
    return Lease(
        id=lease_id or uuid.uuid4().hex,
        model=model,
        holder=holder or (f"pid {pid} on {HOST}" if pid is not None else "an API client"),
        pid=pid,
        host=HOST,
        acquired_at=now,
        heartbeat_at=now,
        ttl_seconds=ttl_seconds,
    )


class HeldLease:
    """A lease of this process, renewed by a background thread until the ``with`` ends.

    Entering records the lease (raising :class:`controller.store.errors.BeingEvictedError` while
    retention is deleting the model); leaving releases it, even on an exception.
    """

    def __init__(self, store: StateStore, model: str, *, clock: Clock, ttl_seconds: float) -> None:
        self._store = store
        self._model = model
        self._clock = clock
        self._ttl = ttl_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease: Lease | None = None

    def __enter__(self) -> Lease:
        lease = new_lease(self._model, self._clock(), ttl_seconds=self._ttl, pid=os.getpid())
        self._store.add_lease(lease)
        self.lease = lease
        self._thread = threading.Thread(
            target=self._beat, name=f"modelsync-lease-{self._model}", daemon=True
        )
        self._thread.start()
        return lease

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.lease is not None:
            self._store.release_lease(self.lease.id)
            self.lease = None

    def _beat(self) -> None:
        # A third of the ttl: two heartbeats may be late before anyone counts the lease void.
        while not self._stop.wait(self._ttl / 3):
            lease = self.lease
            if lease is None:
                return
            try:
                if not self._store.renew_lease(lease.id, self._clock()):
                    # Pruned as void (this process stalled past its ttl): take it again.
                    self._store.add_lease(
                        new_lease(
                            lease.model,
                            self._clock(),
                            ttl_seconds=lease.ttl_seconds,
                            pid=lease.pid,
                            lease_id=lease.id,
                        )
                    )
            except Exception:  # a busy or vanished database must not kill the application
                log.warning("could not renew the lease on %s", lease.model, exc_info=True)

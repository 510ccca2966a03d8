"""The request API for applications: ask for a model, record its use, read its status.

    from controller.api.client import ModelAvailability

    with ModelAvailability("/etc/modelsync/manifests") as models:
        result = models.request("t2v-A14B")
        if result.success:
            pipe = load(...)                       # local_files_only=True
            models.record_use("t2v-A14B", generation_seconds=42.0)
        elif result.alternatives:
            ...                                    # an AVAILABLE stand-in
        else:
            print(result.phase, result.estimated_wait_seconds, result.action_required)

While an application loads or runs a model, ``with models.use("t2v-A14B"):`` marks it in use
(a lease in the state database): retention does not delete it, and an update does not switch
its ref, until the block ends.

No controller needs to run: the client reads the cache and the state database itself, never
contacts the hub, and writes only the state database (uses, and requests for on-demand
models, which the next ``reconcile --apply`` picks up).  Several processes may use it at
once; the database takes concurrent writers (WAL, busy timeout).

The CLI (``reconcile request|use``) and the HTTP API (``controller.api.app``) are thin
doors onto this class, so all three give the same answers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from controller.api import discovery
from controller.api.events import EventKind, Follower
from controller.domain import DesiredModel, DesiredState, Lease, Observation, Phase, Policy
from controller.domain.assessment import assess
from controller.domain.status import Failure, ModelStatus, StatusReport
from controller.domain.usage import window_start
from controller.engine import status_file
from controller.engine.observe import observe
from controller.manifest.desired import to_desired
from controller.manifest.loading import load_manifests
from controller.planning import availability
from controller.planning.availability import ModelRequestResult
from controller.store import StateStore, leases
from controller.store.leases import HeldLease
from controller.system.clock import utcnow

if TYPE_CHECKING:
    # Imported where a request is sent: most users of this module (``verify``, ``status``,
    # ``request`` without a controller) never send one, and httpx was a tenth of their
    # start-up.
    import httpx2

Clock = Callable[[], datetime]
# A controller's API answers from memory: one that takes longer is as good as unreachable.
REMOTE_TIMEOUT_SECONDS = 5.0
_Hints = tuple[Mapping[str, Failure], Mapping[str, Phase]]


class UnknownModelError(KeyError):
    """A name that no manifest declares; the message lists the names that are declared."""

    def __init__(self, name: str, declared: tuple[str, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.declared = declared

    def __str__(self) -> str:
        return availability.unknown_model_message(self.name, self.declared)


class UseRecorded(BaseModel):
    """The acknowledgement of :meth:`ModelAvailability.record_use`."""

    model_config = ConfigDict(frozen=True)
    model: str
    used_at: datetime
    generation_seconds: float | None = None


class LeaseGrant(BaseModel):
    """A lease taken through :meth:`ModelAvailability.acquire_lease`: renew it before
    ``expires_at`` with its ``lease_id``, release it when done."""

    model_config = ConfigDict(frozen=True)
    lease_id: str
    model: str
    holder: str
    ttl_seconds: float
    expires_at: datetime

    @classmethod
    def of(cls, lease: Lease) -> LeaseGrant:
        return cls(
            lease_id=lease.id,
            model=lease.model,
            holder=lease.holder,
            ttl_seconds=lease.ttl_seconds,
            expires_at=lease.heartbeat_at + timedelta(seconds=lease.ttl_seconds),
        )


class ModelReadiness(BaseModel):
    """A model's answer on a controller's readiness route (``/v1/models/{name}/ready``)."""

    model_config = ConfigDict(frozen=True)
    model: str
    ready: bool = Field(description="the model is AVAILABLE: present and verified")
    phase: Phase | None = Field(description="None until a reconcile has reported the model")
    message: str | None = Field(
        default=None, description="why it is not ready; only to a caller with the token"
    )


class ControllerUnreachable(Exception):
    """A running controller's API did not answer, or not as a modelsync controller does."""


def remote_status(
    url: str, *, token: str | None, timeout: float = REMOTE_TIMEOUT_SECONDS
) -> StatusReport:
    """The live status of the controller whose API is at ``url`` (``GET /v1/status``)."""
    import httpx2

    response = _get(url, "/v1/status", token, timeout)
    if response.status_code == 401:
        raise ControllerUnreachable(f"{url}: refused the token (set {discovery.TOKEN_ENV})")
    try:
        response.raise_for_status()
        return StatusReport.model_validate(response.json())
    except (httpx2.HTTPError, ValueError) as e:
        raise ControllerUnreachable(f"{url}: {_describe(e, response)}") from None


def remote_readiness(
    url: str, name: str, *, token: str | None, timeout: float = REMOTE_TIMEOUT_SECONDS
) -> ModelReadiness:
    """Whether ``name`` is ready on the controller at ``url``; raises
    :class:`UnknownModelError` when that controller declares no such model."""
    import httpx2

    # Declared names are URL-safe ([A-Za-z0-9._-]); any other is unknown there anyway.
    response = _get(url, f"/v1/models/{quote(name, safe='')}/ready", token, timeout)
    try:
        if response.status_code == 404 and "declared_models" in response.text:
            body = response.json()
            raise UnknownModelError(name, tuple(body.get("declared_models") or ()))
        if response.status_code not in (200, 503):
            response.raise_for_status()
        return ModelReadiness.model_validate(response.json())
    except (httpx2.HTTPError, ValueError) as e:
        raise ControllerUnreachable(f"{url}: {_describe(e, response)}") from None


def _get(url: str, path: str, token: str | None, timeout: float) -> httpx2.Response:
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return httpx2.get(url.rstrip("/") + path, headers=headers, timeout=timeout)
    except httpx2.HTTPError as e:
        raise ControllerUnreachable(f"{url}: {type(e).__name__}: {e}") from None


def _describe(error: Exception, response: httpx2.Response) -> str:
    import httpx2

    if isinstance(error, httpx2.HTTPStatusError):
        return f"answered {response.status_code} to {response.request.url.path}"
    return f"not a modelsync controller's answer ({type(error).__name__})"


class ModelAvailability:
    """Requests, usage and live status of the models that a set of manifests declares."""

    def __init__(
        self, manifests: str | os.PathLike[str] = "manifests", *, clock: Clock = utcnow
    ) -> None:
        """``manifests`` is a manifest file or directory, as for ``reconcile -f``.

        Raises :class:`controller.manifest.problems.ManifestError` when the manifests are invalid.
        """
        self._init(to_desired(load_manifests(Path(manifests))), clock)

    @classmethod
    def from_desired(
        cls, desired: DesiredState, *, clock: Clock = utcnow, nudge: bool = True
    ) -> ModelAvailability:
        """``nudge``: tell a running controller at once about queued requests (the
        controller's own HTTP door, which reconciles by itself, passes False)."""
        client = cls.__new__(cls)
        client._init(desired, clock, nudge)
        return client

    def _init(self, desired: DesiredState, clock: Clock, nudge: bool = True) -> None:
        self.desired = desired
        self._clock = clock
        self._nudge = nudge
        self._models: dict[str, DesiredModel] = {m.name: m for m in desired.models}
        self._store: StateStore | None = None
        self._lock = threading.Lock()
        self._hints: tuple[tuple[int, int, int], _Hints] | None = None

    # ----------------------------------------------------------------- the API

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    def request(self, name: str) -> ModelRequestResult:
        """Ask for ``name``: at once whether it is usable, else its phase, wait and options.

        A missing on-demand model is queued (recorded in the state database) for the next
        reconcile to fetch.  An unknown name gives a result whose ``error`` lists the
        declared names; nothing raises for a model that is merely not available.
        """
        model = self._models.get(name)
        if model is None:
            return availability.unknown_model(name, self.desired)
        now = self._clock()
        store = self._open()
        observed = self._observe(store, now)
        if _queues(model, observed):
            store.add_request(name, now)
            observed = replace(observed, requested=observed.requested | {name})
            if self._nudge:
                # A running controller would see the request at its next resync; asking it
                # now makes the wait the download's, not the resync interval's.
                # Declared names are URL-safe ([A-Za-z0-9._-]): the path needs no quoting.
                discovery.nudge(self.desired.state_dir, f"/v1/models/{name}/request")
        return availability.answer(
            name, self.desired, self._snapshot(observed, now), controller_running=self._served()
        )

    def record_use(self, name: str, generation_seconds: float | None = None) -> UseRecorded:
        """Record one use of ``name`` now, with how long it took to generate, if known."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        at = self._clock()
        self._open().record_use(name, at, generation_seconds)
        return UseRecorded(model=name, used_at=at, generation_seconds=generation_seconds)

    def use(self, name: str, *, ttl_seconds: float = leases.DEFAULT_TTL_SECONDS) -> HeldLease:
        """Mark ``name`` in use for the length of a ``with`` block::

            with models.use("t2v-A14B"):
                pipe = load(...)  # retention cannot delete it, an update cannot switch it

        The lease lives in the state database, so every process sees it.  A background
        thread renews it every ``ttl_seconds / 3``; it is void as soon as this process is
        gone, or once its heartbeat is older than ``ttl_seconds``.  Entering raises
        :class:`controller.store.BeingEvictedError` while retention is evicting the model.
        It records no use: call :meth:`record_use` for that.
        """
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        return HeldLease(self._open(), name, clock=self._clock, ttl_seconds=ttl_seconds)

    def acquire_lease(
        self,
        name: str,
        *,
        ttl_seconds: float = leases.DEFAULT_TTL_SECONDS,
        lease_id: str | None = None,
        holder: str | None = None,
    ) -> LeaseGrant:
        """Take a lease its holder keeps by calling again with ``lease_id`` within
        ``ttl_seconds`` (the HTTP door: a remote client has no process here to watch).
        An unknown or expired ``lease_id`` is taken afresh under the same id."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        store, now = self._open(), self._clock()
        known = {lease.id: lease for lease in store.leases()}
        found = known.get(lease_id) if lease_id else None
        if found is not None and found.model != name:
            raise ValueError(f"lease {lease_id} is for {found.model}, not {name}")
        if found is not None and leases.is_live(found, now):
            store.renew_lease(found.id, now, ttl_seconds)
            lease = replace(found, heartbeat_at=now, ttl_seconds=ttl_seconds)
        else:
            if found is not None:
                store.release_lease(found.id)  # void: taken again below, checked like a new one
            lease = leases.new_lease(
                name, now, ttl_seconds=ttl_seconds, holder=holder, lease_id=lease_id
            )
            store.add_lease(lease)
        return LeaseGrant.of(lease)

    def release_lease(self, name: str, lease_id: str) -> bool:
        """End a lease; False when there was none of ``name`` with that id."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        store = self._open()
        if not any(lease.id == lease_id for lease in store.leases(name)):
            return False
        return store.release_lease(lease_id)

    def status(self, name: str) -> ModelStatus:
        """The live status of one model, as the status file would show it now."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        found = self.status_report().model(name)
        assert found is not None
        return found

    def pause(self, name: str) -> ModelStatus:
        """Stop all work on ``name`` (downloads, repairs, updates, deletions) until
        :meth:`resume`; its files stay usable and a partial download is kept.  Recorded in
        the state database, so it holds across restarts; a running controller stops the
        model's transfer at its next chunk when paused through its API."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        self._open().pause(name, self._clock())
        self._tell_controller(f"/v1/models/{name}/pause")
        return self.status(name)

    def resume(self, name: str) -> ModelStatus:
        """Lift a pause; the next reconcile carries on where the model's work stopped."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        self._open().resume(name)
        self._tell_controller(f"/v1/models/{name}/resume")
        return self.status(name)

    def subscribe(
        self,
        callback: Callable[[dict[str, Any]], None],
        *,
        kinds: Iterable[EventKind] | None = None,
        url: str | None = None,
    ) -> Follower:
        """Call ``callback`` with each event of the running controller (``reconcile
        --watch``): phase changes, transfer progress, passes (the seed's status and progress
        callbacks).  ``url`` defaults to the controller of these manifests' state directory;
        the token, when it needs one, comes from ``MODELSYNC_API_TOKEN``.  Close the returned
        follower to stop.  Raises :class:`LookupError` when no controller is running.
        """
        if url is None:
            running = discovery.read_info(self.desired.state_dir)
            if running is None:
                raise LookupError(
                    f"no controller is running for {self.desired.state_dir}; start "
                    "`reconcile --watch`, or pass url="
                )
            url = running.url
        return Follower(url, callback, kinds=kinds, token=discovery.token_from_env())

    def status_report(self) -> StatusReport:
        """The live status of every model, computed now from the cache and the state."""
        now = self._clock()
        return self._snapshot(self._observe(self._open(), now), now).report

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> ModelAvailability:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- internals

    def _open(self) -> StateStore:
        with self._lock:
            if self._store is None:
                store = StateStore.open(Path(self.desired.state_dir))
                # Each client prunes once when it starts, as each reconcile does, so old
                # uses go even on a machine where the controller rarely runs.
                store.prune_usage(window_start(self._clock(), self.desired.usage_window_days))
                self._store = store
            return self._store

    def _served(self) -> bool:
        """Whether a controller serves these manifests (this client may be its HTTP door)."""
        return not self._nudge or discovery.read_info(self.desired.state_dir) is not None

    def _tell_controller(self, path: str) -> None:
        # The pause is recorded already; telling a running controller makes it stop (or
        # resume) the model's transfer now rather than at its next resync.  Its own HTTP
        # door does that itself.  Declared names are URL-safe: the path needs no quoting.
        if self._nudge:
            discovery.nudge(self.desired.state_dir, path)

    def _observe(self, store: StateStore, now: datetime) -> Observation:
        # Offline: an application asking for a model must not wait on the network; the hub's
        # last answer (remembered by the last reconcile) says what each model consists of.
        return observe(self.desired, now=now, offline=True, store=store)

    def _snapshot(self, observed: Observation, now: datetime) -> availability.Snapshot:
        failures, in_progress = self._last_reconcile()
        return availability.snapshot(
            self.desired, observed, now, failures=failures, in_progress=in_progress
        )

    def _last_reconcile(self) -> _Hints:
        """What the last reconcile of these manifests reported that the disk cannot show:
        transfers under way, and failures (a disk holding half a model looks the same
        whether its download is queued or failed).  Re-read only when the file changes."""
        path = Path(self.desired.status_file)
        try:
            st = path.stat()
        except OSError:
            return {}, {}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._hints
        if cached is not None and cached[0] == key:
            return cached[1]
        hints = _read_hints(path, self.desired.generation)
        self._hints = (key, hints)
        return hints


def _queues(model: DesiredModel, observed: Observation) -> bool:
    """Whether requesting ``model`` must record a request for a reconcile to act on."""
    if model.policy is not Policy.ON_DEMAND or model.suspend:
        return False
    if model.name in observed.requested:
        return False
    return not assess(model, observed).complete


def _read_hints(path: Path, generation: str) -> _Hints:
    try:
        last = status_file.read(path)
    except Exception:  # a foreign or hand-edited file only means there is nothing to add
        return {}, {}
    if last.observed_generation != generation:
        return {}, {}  # written for other manifests: its failures may no longer apply
    failures = {
        m.name: Failure(reason=m.reason, message=m.message)
        for m in last.models
        if m.phase is Phase.FAILED
    }
    in_progress = {
        m.name: m.phase for m in last.models if m.phase in (Phase.DOWNLOADING, Phase.UPDATING)
    }
    return failures, in_progress

"""The request API for applications: ask for a model, record its use, read its status.

    from controller.client import ModelAvailability

    with ModelAvailability("/etc/modelsync/manifests") as models:
        result = models.request("t2v-A14B")
        if result.success:
            pipe = load(...)                       # local_files_only=True
            models.record_use("t2v-A14B", generation_seconds=42.0)
        elif result.alternatives:
            ...                                    # an AVAILABLE stand-in
        else:
            print(result.phase, result.estimated_wait_seconds, result.action_required)

No controller needs to run: the client reads the cache and the state database itself, never
contacts the hub, and writes only the state database (uses, and requests for on-demand
models, which the next ``reconcile --apply`` picks up).  Several processes may use it at
once; the database takes concurrent writers (WAL, busy timeout).

The CLI (``reconcile request|use``) and the HTTP handler (``controller.api``) are thin
doors onto this class, so all three give the same answers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import TracebackType

from pydantic import BaseModel, ConfigDict

from controller import availability, status
from controller.assess import assess
from controller.availability import ModelRequestResult
from controller.clock import utcnow
from controller.domain import DesiredModel, DesiredState, Observation, Phase, Policy
from controller.manifest import load_manifests, to_desired
from controller.observe import observe
from controller.state import StateStore
from controller.status import Failure, ModelStatus, StatusReport
from controller.usage import window_start

Clock = Callable[[], datetime]
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


class ModelAvailability:
    """Requests, usage and live status of the models that a set of manifests declares."""

    def __init__(
        self, manifests: str | os.PathLike[str] = "manifests", *, clock: Clock = utcnow
    ) -> None:
        """``manifests`` is a manifest file or directory, as for ``reconcile -f``.

        Raises :class:`controller.manifest.ManifestError` when the manifests are invalid.
        """
        self._init(to_desired(load_manifests(Path(manifests))), clock)

    @classmethod
    def from_desired(cls, desired: DesiredState, *, clock: Clock = utcnow) -> ModelAvailability:
        client = cls.__new__(cls)
        client._init(desired, clock)
        return client

    def _init(self, desired: DesiredState, clock: Clock) -> None:
        self.desired = desired
        self._clock = clock
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
        return availability.answer(name, self.desired, self._snapshot(observed, now))

    def record_use(self, name: str, generation_seconds: float | None = None) -> UseRecorded:
        """Record one use of ``name`` now, with how long it took to generate, if known."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        at = self._clock()
        self._open().record_use(name, at, generation_seconds)
        return UseRecorded(model=name, used_at=at, generation_seconds=generation_seconds)

    def status(self, name: str) -> ModelStatus:
        """The live status of one model, as the status file would show it now."""
        if name not in self._models:
            raise UnknownModelError(name, self.names)
        found = self.status_report().model(name)
        assert found is not None
        return found

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
        last = status.read(path)
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

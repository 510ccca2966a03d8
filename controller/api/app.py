"""The controller's HTTP API: probes, metrics, the request API and the event stream.

    GET    /healthz                      200 while the loop runs (liveness)
    GET    /readyz                       200 once every `always` model is AVAILABLE, else 503
    GET    /v1/models/{name}/ready       200 when the model is AVAILABLE, else 503 (404 unknown);
                                         open like the probes: a startup probe sends no token
    GET    /metrics                      Prometheus text (controller.api.metrics)
    GET    /v1/events                    server-sent events (controller.api.events);
                                         ?kinds=phase,progress narrows them
    POST   /v1/reconcile                 ask for a pass now (202); lifts failing models' backoff
    GET    /v1/status                    the live status of every model (as the status file,
                                         with transfers in flight and rejected edits)
    GET    /v1/models/{name}             the live status of one model
    POST   /v1/models/{name}/request     request it: ModelRequestResult (200 even when the
                                         model is not available yet: read ``success``)
    POST   /v1/models/{name}/use         record a use; body {"generation_seconds": 12.5}
                                         (optional)
    POST   /v1/models/{name}/pause       stop all work on the model until resumed (kept in the
                                         state database); the model's status
    POST   /v1/models/{name}/resume      lift the pause; the model's status
    POST   /v1/models/{name}/lease       mark it in use: retention never deletes it and an
                                         update never switches it while the lease lives;
                                         body {"ttl_seconds": 60, "holder": "worker-3"}
                                         (optional); answers the lease_id and expires_at.
                                         POST again with {"lease_id": ...} (or to
                                         .../lease/{lease_id}) before then to renew it; 409
                                         while retention is evicting the model
    DELETE /v1/models/{name}/lease[/{lease_id}]  release it (or {"lease_id": ...} in the body)
    GET    /openapi.json                 this API, with the schemas of every body

Every model route is a call to the same :class:`~controller.api.client.ModelAvailability`
that applications and ``reconcile request|use`` use, and its bodies are the same pydantic
models: the status file's (:mod:`controller.domain.status`) and the availability answer
(:class:`~controller.planning.availability.ModelRequestResult`).

Errors are JSON too: ``{"error": "..."}`` with 400 (bad body), 401 (missing or wrong token),
404 (unknown model or route; an unknown model also lists ``declared_models``), 405 (wrong
method, with ``allowed``), 409, 413 (body over 1 MiB) or 500.

With a token (``MODELSYNC_API_TOKEN``; required beyond loopback, see
:func:`controller.api.listener.check_bind`) every route but the two probes requires
``Authorization: Bearer <token>``; the probes stay open because kubelets and load balancers
call them without credentials, and they reveal nothing.  A model's readiness route is a probe
too: without the token it answers only whether the model is ready and its phase; the message
(which may name files and repos) and, for an unknown name, the declared names go only to a
caller that sends the token.

The app runs no loop: the running controller is handed in as a :class:`RunningController`,
which ``controller.runtime.loop.Controller`` is, and a test's stand-in can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from controller import __version__
from controller.api import discovery, metrics
from controller.api.client import (
    LeaseGrant,
    ModelAvailability,
    ModelReadiness,
    UnknownModelError,
    UseRecorded,
)
from controller.api.discovery import TOKEN_ENV
from controller.api.events import KEEPALIVE_SECONDS, Event, EventBus, EventKind
from controller.domain import DesiredState, Phase
from controller.domain.progress import ModelProgress
from controller.domain.status import ModelStatus, StatusReport
from controller.engine import status_file
from controller.hub.revisions import redact
from controller.planning.availability import ModelRequestResult
from controller.store import leases
from controller.store.errors import BeingEvictedError

log = logging.getLogger("modelsync.api")

MAX_BODY = 1024 * 1024
SSE_RETRY_MILLISECONDS = 2000  # how soon an EventSource reconnects after the stream ends


class RunningController(Protocol):
    """What the API needs of the running controller."""

    @property
    def alive(self) -> bool:
        """The loop is running."""

    @property
    def desired(self) -> DesiredState:
        """The manifests in force (the last valid ones)."""

    @property
    def report(self) -> StatusReport | None:
        """The latest status; None before the first pass has written one."""

    @property
    def problems(self) -> tuple[str, ...]:
        """Why the latest manifest edit was rejected; empty when it was not."""

    @property
    def bus(self) -> EventBus: ...

    def transfers(self) -> Mapping[str, ModelProgress]:
        """Transfers in flight, by model."""

    def metrics_sample(self) -> metrics.Sample: ...

    def reconcile_now(self) -> None:
        """A pass now, with every failing model's backoff lifted."""

    def fetch_requested(self) -> None:
        """A model was requested and queued: a pass now fetches it."""

    def stop_model(self, name: str) -> None:
        """The model was paused: stop its work in the running pass."""

    def resume_model(self, name: str) -> None:
        """The model was resumed: retry it now."""


# --------------------------------------------------------------------------- bodies


class ApiError(BaseModel):
    """Every error's body."""

    error: str
    allowed: tuple[str, ...] | None = Field(
        default=None, description="405: the methods the route takes"
    )
    declared_models: tuple[str, ...] | None = Field(
        default=None, description="404 for an unknown model: the names that are declared"
    )


class Health(BaseModel):
    status: str = Field(description='"ok", or "loop stopped"')


class Waiting(BaseModel):
    model: str
    phase: Phase
    message: str


class Readiness(BaseModel):
    ready: bool
    waiting: str | tuple[Waiting, ...] = Field(
        description="the `always` models not AVAILABLE yet, or what the first answer waits for"
    )


class Accepted(BaseModel):
    accepted: bool


class UseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generation_seconds: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, strict=True, description="how long it took"
    )


class LeaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_id: str | None = Field(
        default=None, min_length=1, strict=True, description="renew this lease (or retake it)"
    )
    ttl_seconds: float = Field(
        default=leases.DEFAULT_TTL_SECONDS,
        gt=0,
        allow_inf_nan=False,
        strict=True,
        description="the lease lapses unless renewed within this time",
    )
    holder: str | None = Field(default=None, strict=True, description="who holds it, for people")


class LeaseRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_id: str | None = Field(default=None, min_length=1, strict=True)


class LeaseReleased(BaseModel):
    released: bool
    lease_id: str
    model: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ApiError, "description": text}
    for code, text in [
        (400, "a bad body"),
        (404, "an unknown model (with declared_models)"),
        (500, "an internal error"),
    ]
}


# --------------------------------------------------------------------------- the app


def create_app(
    controller: RunningController,
    *,
    token: str | None = None,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
) -> FastAPI:
    """The API of ``controller``; with ``token``, every route but the probes requires it.
    ``keepalive_seconds``: how often an idle event stream gets a comment."""
    doors = _Doors(controller)
    node = discovery.node_name()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        doors.close()

    app = _App(
        title="modelsync controller",
        version=__version__,
        description="The request API of a running `reconcile --watch`.",
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the token like every route but the probes
        docs_url=None,
        redoc_url=None,
        # A body sent without a Content-Type is read as JSON, as it always was here (Python's
        # HTTP clients send none with raw bytes).
        strict_content_type=False,
    )
    app.add_middleware(_Gate)
    app.add_exception_handler(RequestValidationError, _bad_request)

    probes = APIRouter(route_class=_Answering, tags=["probes"])
    unauthorized: dict[int | str, dict[str, Any]] = {
        401: {"model": ApiError, "description": "a missing or wrong bearer token"}
    }
    guarded = APIRouter(
        route_class=_Answering,
        dependencies=[Depends(_bearer(token))] if token else [],
        responses=unauthorized if token else {},
    )

    @probes.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz(response: Response) -> Health:
        if controller.alive:
            return Health(status="ok")
        response.status_code = 503
        return Health(status="loop stopped")

    @probes.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    def readyz(response: Response) -> Readiness:
        report = controller.report
        if report is None:
            response.status_code = 503
            return Readiness(ready=False, waiting="the first reconcile")
        waiting = tuple(
            Waiting(model=m.name, phase=m.phase, message=m.message)
            for m in report.models
            if m.policy == "always" and m.phase not in (Phase.AVAILABLE, Phase.PAUSED)
        )
        ready = report.summary.ready
        response.status_code = 200 if ready else 503
        return Readiness(ready=ready, waiting=waiting)

    @probes.get(
        "/v1/models/{name}/ready",
        response_model=ModelReadiness,
        tags=["probes"],
        responses={
            503: {"model": ModelReadiness, "description": "not AVAILABLE (yet)"},
            404: {"model": ApiError, "description": "an unknown model"},
        },
    )
    def model_ready(name: str, request: Request, response: Response) -> Response | ModelReadiness:
        trusted = token is None or _carries(request, token)
        declared = tuple(m.name for m in controller.desired.models)
        if name not in declared:
            if not trusted:
                return _error(404, f"unknown model: {name}")
            return _error(404, str(UnknownModelError(name, declared)), declared_models=declared)
        readiness = _readiness(name, controller.report)
        response.status_code = 200 if readiness.ready else 503
        return readiness if trusted else readiness.model_copy(update={"message": None})

    scraped = metrics.registry(controller.metrics_sample, node=node)

    @guarded.get(
        "/metrics",
        tags=["probes"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def prometheus(request: Request) -> Response:
        body, content_type = metrics.exposition(scraped, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @guarded.get(
        "/v1/events",
        tags=["events"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
            400: {"model": ApiError, "description": "an unknown kind"},
        },
    )
    async def events(kinds: str = "") -> Response:
        try:
            wanted = frozenset(EventKind(k) for k in kinds.split(",") if k) or None
        except ValueError:
            known = ", ".join(k.value for k in EventKind)
            return _error(400, f"unknown event kind in {kinds!r}; known: {known}")
        return _EventStream(controller, wanted, keepalive_seconds)

    @guarded.post("/v1/reconcile", status_code=202, response_model=Accepted, tags=["controller"])
    def reconcile() -> Accepted:
        controller.reconcile_now()
        return Accepted(accepted=True)

    @guarded.get("/v1/status", response_model=StatusReport, tags=["models"], responses=_ERRORS)
    def status() -> StatusReport:
        report = doors.client().status_report()
        transfers = controller.transfers()
        return report.model_copy(
            update={
                "models": tuple(_with_progress(m, transfers) for m in report.models),
                "errors": (*controller.problems, *report.errors),
                "node": node,
            }
        )

    @guarded.get(
        "/v1/models/{name}", response_model=ModelStatus, tags=["models"], responses=_ERRORS
    )
    def model(name: str) -> ModelStatus:
        return _with_progress(doors.client().status(name), controller.transfers())

    @guarded.post(
        "/v1/models/{name}/request",
        response_model=ModelRequestResult,
        tags=["models"],
        responses={**_ERRORS, 404: {"model": ModelRequestResult, "description": "unknown"}},
    )
    def request(name: str, response: Response) -> ModelRequestResult:
        result = doors.client().request(name)
        if result.declared_models:
            response.status_code = 404
        elif not result.success and not result.error:
            controller.fetch_requested()  # queued: fetch it now, not at the resync
        return result

    @guarded.post(
        "/v1/models/{name}/use", response_model=UseRecorded, tags=["models"], responses=_ERRORS
    )
    def use(name: str, body: Annotated[UseBody | None, Body()] = None) -> UseRecorded:
        seconds = None if body is None else body.generation_seconds
        return doors.client().record_use(name, seconds)

    @guarded.post(
        "/v1/models/{name}/pause", response_model=ModelStatus, tags=["models"], responses=_ERRORS
    )
    def pause(name: str) -> ModelStatus:
        paused = doors.client().pause(name)
        controller.stop_model(name)
        return paused

    @guarded.post(
        "/v1/models/{name}/resume", response_model=ModelStatus, tags=["models"], responses=_ERRORS
    )
    def resume(name: str) -> ModelStatus:
        resumed = doors.client().resume(name)
        controller.resume_model(name)
        return resumed

    lease_errors = {**_ERRORS, 409: {"model": ApiError, "description": "being evicted"}}

    @guarded.post(
        "/v1/models/{name}/lease",
        response_model=LeaseGrant,
        tags=["leases"],
        responses=lease_errors,
    )
    def lease(name: str, body: Annotated[LeaseBody | None, Body()] = None) -> Response | LeaseGrant:
        return _take_lease(doors.client(), name, None, body or LeaseBody())

    @guarded.post(
        "/v1/models/{name}/lease/{lease_id}",
        response_model=LeaseGrant,
        tags=["leases"],
        responses=lease_errors,
    )
    def renew_lease(
        name: str, lease_id: str, body: Annotated[LeaseBody | None, Body()] = None
    ) -> Response | LeaseGrant:
        return _take_lease(doors.client(), name, lease_id, body or LeaseBody())

    @guarded.delete(
        "/v1/models/{name}/lease",
        response_model=LeaseReleased,
        tags=["leases"],
        responses=_ERRORS,
    )
    def release(
        name: str, body: Annotated[LeaseRelease | None, Body()] = None
    ) -> Response | LeaseReleased:
        given = None if body is None else body.lease_id
        return _release_lease(doors.client(), name, given)

    @guarded.delete(
        "/v1/models/{name}/lease/{lease_id}",
        response_model=LeaseReleased,
        tags=["leases"],
        responses=_ERRORS,
    )
    def release_by_id(
        name: str, lease_id: str, body: Annotated[LeaseRelease | None, Body()] = None
    ) -> Response | LeaseReleased:
        given = lease_id if body is None or body.lease_id is None else body.lease_id
        return _release_lease(doors.client(), name, given)

    @guarded.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(probes)
    app.include_router(guarded)
    app.add_exception_handler(HTTPException, _http_errors(probes, guarded))
    return app


class _App(FastAPI):
    def openapi(self) -> dict[str, Any]:
        """The document, with 400 where FastAPI would say 422: a body that fails validation
        is answered 400 here, as it always was."""
        if self.openapi_schema is None:
            schema = super().openapi()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
            self.openapi_schema = schema
        return self.openapi_schema


class _Doors:
    """The request API's client, remade when the manifests in force change."""

    def __init__(self, controller: RunningController) -> None:
        self._controller = controller
        self._lock = threading.Lock()
        self._desired: DesiredState | None = None
        self._client: ModelAvailability | None = None

    def client(self) -> ModelAvailability:
        desired = self._controller.desired
        with self._lock:
            if self._client is None or desired is not self._desired:
                previous = self._client
                # nudge=False: requests through this door ask for a pass themselves.
                self._client = ModelAvailability.from_desired(desired, nudge=False)
                self._desired = desired
                if previous is not None:
                    previous.close()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _readiness(name: str, report: StatusReport | None) -> ModelReadiness:
    """A model's readiness from the latest status, as ``/readyz`` reads it."""
    found = None if report is None else report.model(name)
    if found is None:  # before the first pass, or declared by an edit no pass has seen yet
        return ModelReadiness(model=name, ready=False, phase=None, message="not reconciled yet")
    return ModelReadiness(
        model=name,
        ready=found.phase is Phase.AVAILABLE,
        phase=found.phase,
        message=found.message,
    )


def _carries(request: Request, token: str) -> bool:
    """Whether the request sends the API's bearer token (on an open route, which answers
    more to a caller that does)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _with_progress(status: ModelStatus, transfers: Mapping[str, ModelProgress]) -> ModelStatus:
    """What the controller knows beyond the disk: the transfer in flight."""
    progress = transfers.get(status.name)
    return status if progress is None else status.model_copy(update={"progress": progress})


def _take_lease(
    client: ModelAvailability, name: str, in_path: str | None, body: LeaseBody
) -> Response | LeaseGrant:
    """Take a lease, or renew it (renew it within its ttl, or it lapses).  The lease id
    comes from the body's ``lease_id`` or the path's last segment."""
    lease_id = body.lease_id if "lease_id" in body.model_fields_set else in_path
    try:
        return client.acquire_lease(
            name, ttl_seconds=body.ttl_seconds, lease_id=lease_id, holder=body.holder
        )
    except BeingEvictedError as e:
        return _error(409, str(e))
    except ValueError as e:
        return _error(400, str(e))


def _release_lease(
    client: ModelAvailability, name: str, lease_id: str | None
) -> Response | LeaseReleased:
    if lease_id is None:
        return _error(400, "which lease? give lease_id in the body or the path")
    if not client.release_lease(name, lease_id):
        return _error(404, f"no lease {lease_id} on {name}")
    return LeaseReleased(released=True, lease_id=lease_id, model=name)


class _EventStream(StreamingResponse):
    """The event stream: a reconnect delay, the current status, then each event as it comes,
    with a comment whenever the stream has been quiet for ``keepalive`` seconds (proxies keep
    it open, and a client that has gone is noticed).  It ends when the bus closes (the
    controller stops) or drops this subscriber for lagging.

    It subscribes when made, before the response starts: a client that has the headers
    misses no event published after them.  It unsubscribes however the response ends,
    whether or not its body ever started."""

    def __init__(
        self,
        controller: RunningController,
        kinds: frozenset[EventKind] | None,
        keepalive: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        arrived = asyncio.Event()

        def wake() -> None:
            # RuntimeError: the server's loop has closed; nobody reads this stream any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(arrived.set)

        self._subscription = controller.bus.subscribe(kinds, wake=wake)
        super().__init__(
            self._frames(controller, arrived, keepalive),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # nginx: no buffer
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._subscription.close()

    async def _frames(
        self, controller: RunningController, arrived: asyncio.Event, keepalive: float
    ) -> AsyncIterator[bytes]:
        subscription = self._subscription
        # The status is read after subscribing: no event falls between the two.
        yield f"retry: {SSE_RETRY_MILLISECONDS}\n\n".encode() + _first_event(controller).to_sse()
        while True:
            arrived.clear()
            event = subscription.get(timeout=0)
            if event is not None:
                yield event.to_sse()
                continue
            if subscription.closed:
                return
            try:
                await asyncio.wait_for(arrived.wait(), keepalive)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"


def _first_event(controller: RunningController) -> Event:
    """The current state, so that a subscriber never has to race the stream."""
    report = controller.report
    return Event(
        EventKind.STATUS, {"status": None if report is None else status_file.to_dict(report)}
    )


# --------------------------------------------------------------------------- auth and errors


_BEARER = HTTPBearer(auto_error=False, description=f"the controller's {TOKEN_ENV}")


def _bearer(token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    expected = token.encode()

    def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> None:
        given = b"" if credentials is None else credentials.credentials.strip().encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                401,
                f"missing or wrong bearer token (see {TOKEN_ENV})",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return authorized


class _Answering(APIRoute):
    """Every failure is an answer in JSON: the model errors the client raises, and a bug
    (500, logged) rather than a dropped connection."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except UnknownModelError as e:
                return _error(404, str(e), declared_models=e.declared)
            except (HTTPException, RequestValidationError):
                raise  # answered by the app's handlers below
            except Exception as e:
                log.exception("%s %s failed", request.method, request.url.path)
                return _error(500, redact(f"internal error: {type(e).__name__}: {e}"))

        return answer


async def _bad_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if part != "body")
        if error["type"] == "json_invalid":
            problems.append(f"body is not JSON: {error.get('ctx', {}).get('error', '')}")
        elif not where:
            problems.append(f"body must be a JSON object: {error['msg']}")
        else:
            problems.append(f"{where}: {error['msg']}")
    return _error(400, "; ".join(problems))


def _http_errors(
    *routers: APIRouter,
) -> Callable[[Request, Exception], Coroutine[Any, Any, Response]]:
    """Routing's own errors in this API's form: 404 names the path, 405 lists every method
    the path takes (Starlette's ``Allow`` names only the first route that matched it)."""

    def methods(path: str) -> tuple[str, ...]:
        found: list[str] = []
        for router in routers:
            for route in router.routes:
                if isinstance(route, APIRoute) and route.path_regex.match(path):
                    found += [m for m in ("GET", "POST", "DELETE") if m in (route.methods or ())]
        return tuple(dict.fromkeys(found))

    async def answer(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no such endpoint: {request.url.path}")
        if exc.status_code == 405:
            allowed = methods(request.url.path)
            return _error(405, f"method not allowed; use {' or '.join(allowed)}", allowed=allowed)
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    return answer


def _error(
    code: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **detail: tuple[str, ...],
) -> JSONResponse:
    body = ApiError(error=message, **detail).model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=code, headers=headers)


class _Gate:
    """Before routing: a trailing slash names the same route (``/v1/status/``), and a body
    declared larger than :data:`MAX_BODY` is refused unread.

    Middleware of its own because both must happen before FastAPI routes the request and
    reads its body: its slash handling answers a redirect rather than the route, and it reads
    a body whole before any dependency could look at its length.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = {**scope, "path": path.rstrip("/") or "/"}
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > MAX_BODY:
                response = _error(413, f"body larger than {MAX_BODY} bytes")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""The controller's HTTP API: probes, metrics, the request API and the event stream.

    GET  /healthz                        200 while the loop runs (liveness)
    GET  /readyz                         200 once every `always` model is AVAILABLE, else 503
    GET  /metrics                        Prometheus text (controller.api.metrics)
    GET  /v1/events                      server-sent events (controller.api.events);
                                         ?kinds=phase,progress narrows them
    POST /v1/reconcile                   ask for a pass now (202); lifts failing models' backoff
    GET  /v1/status, /v1/models/{name}, POST /v1/models/{name}/request|use|pause|resume
                                         controller.api.routes, with live transfer progress

It binds 127.0.0.1 by default.  Any other address needs a bearer token in
``MODELSYNC_API_TOKEN`` (the controller refuses to start without one): every route but the
two probes then requires ``Authorization: Bearer <token>``; the probes stay open because
kubelets and load balancers call them without credentials, and they reveal nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from controller.api import metrics
from controller.api.client import ModelAvailability
from controller.api.discovery import TOKEN_ENV
from controller.api.events import Event, EventKind
from controller.api.routes import Api
from controller.domain import Phase, budget
from controller.engine import status_file
from controller.runtime.loop import Controller, Loaded, Trigger

log = logging.getLogger("modelsync.server")

KEEPALIVE_SECONDS = 15.0  # an SSE comment this often: proxies keep the stream, we see a gone client
MAX_BODY = 1024 * 1024
_OPEN = {"/healthz", "/readyz"}


class InsecureBind(ValueError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"refusing to listen on {host}: anything but loopback needs a bearer token; "
            f"set {TOKEN_ENV} (clients send `Authorization: Bearer <token>`), or listen on "
            "127.0.0.1"
        )


class ControllerServer:
    def __init__(
        self, controller: Controller, host: str, port: int, *, token: str | None = None
    ) -> None:
        check_bind(host, token)
        self.controller = controller
        self.token = token
        self._api = self._make_api(controller.loaded)
        self._api_lock = threading.Lock()
        controller.on_reload(self._reloaded)
        handler = type("Handler", (_Handler,), {"app": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True  # an event stream must not hold up the exit
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="modelsync-http", daemon=True
        )

    @property
    def url(self) -> str:
        """Where this machine reaches the API (a wildcard address through loopback)."""
        host, port = self.httpd.server_address[:2]
        host = str(host)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1" if host != "::" else "::1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._api_lock:
            self._api.client.close()

    @property
    def api(self) -> Api:
        with self._api_lock:
            return self._api

    def _reloaded(self, loaded: Loaded) -> None:
        with self._api_lock:
            old, self._api = self._api, self._make_api(loaded)
        old.client.close()

    @staticmethod
    def _make_api(loaded: Loaded) -> Api:
        # nudge=False: requests through this door trigger a pass directly (route()).
        return Api(ModelAvailability.from_desired(loaded.desired, nudge=False))

    def authorized(self, header: str | None) -> bool:
        if not self.token:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), self.token)

    # ----------------------------------------------------------------- routes

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        c = self.controller
        if path == "/healthz":
            return (200, {"status": "ok"}) if c.alive else (503, {"status": "loop stopped"})
        if path == "/readyz":
            return self._ready()
        if path == "/v1/reconcile":
            if method != "POST":
                return 405, {"error": "method not allowed; use POST", "allowed": ["POST"]}
            c.request(Trigger.RECONCILE)
            return 202, {"accepted": True}
        code, doc = self.api.handle(method, path, body)
        if code == 200 and method == "POST":
            self._after_model_call(path, doc)
        if code == 200 and method == "GET":
            doc = self._live(path, doc)
        return code, doc

    def _ready(self) -> tuple[int, dict[str, Any]]:
        report = self.controller.report
        if report is None:
            return 503, {"ready": False, "waiting": "the first reconcile"}
        waiting = [
            {"model": m.name, "phase": m.phase.value, "message": m.message}
            for m in report.models
            if m.policy == "always" and m.phase not in (Phase.AVAILABLE, Phase.PAUSED)
        ]
        ready = report.summary.ready
        return (200 if ready else 503), {"ready": ready, "waiting": waiting}

    def _after_model_call(self, path: str, doc: dict[str, Any]) -> None:
        verb = path.rstrip("/").rsplit("/", 1)[-1]
        name = unquote(path.rstrip("/").split("/")[3])
        if verb == "pause":
            self.controller.stop_model(name)
        elif verb == "resume":
            self.controller.resume_model(name)
        elif verb == "request" and not doc.get("success") and not doc.get("error"):
            self.controller.request(Trigger.MODEL)  # queued: fetch it now, not at the resync

    def _live(self, path: str, doc: dict[str, Any]) -> dict[str, Any]:
        """What the controller knows beyond the disk: transfers in flight, rejected edits."""
        snapshot = self.controller.progress.snapshot()
        if path.rstrip("/") == "/v1/status":
            for m in doc.get("models", []):
                if m["name"] in snapshot:
                    m["progress"] = snapshot[m["name"]].model_dump(mode="json")
            doc["errors"] = [*self.controller.problems, *doc.get("errors", [])]
        elif doc.get("name") in snapshot:
            doc["progress"] = snapshot[doc["name"]].model_dump(mode="json")
        return doc

    def metrics_text(self) -> str:
        c = self.controller
        disk = c.disk
        percent = c.loaded.manifests.retention.max_storage_usage_percent
        sample = c.metrics.sample(
            report=c.report,
            downloaded=c.progress.received(),
            disk=disk,
            budget_bytes=None if disk is None else budget.from_percent(percent, disk).bytes,
            ready=c.ready,
        )
        return metrics.render(sample)

    def first_event(self) -> Event:
        """The current state, so that a subscriber never has to race the stream."""
        report = self.controller.report
        data: dict[str, Any] = {"status": None if report is None else status_file.to_dict(report)}
        return Event(EventKind.STATUS, data)


class _Handler(BaseHTTPRequestHandler):
    app: ControllerServer
    server_version = "modelsync"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path not in _OPEN and not self.app.authorized(self.headers.get("Authorization")):
            self._json(401, {"error": f"missing or wrong bearer token (see {TOKEN_ENV})"})
            return
        if path == "/metrics" and method == "GET":
            self._send(200, metrics.CONTENT_TYPE, self.app.metrics_text().encode())
        elif path == "/v1/events" and method == "GET":
            self._events(parse_qs(parts.query).get("kinds", [""])[0])
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"error": f"body larger than {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length) if length else b""
            self._json(*self.app.route(method, path, body))

    def _json(self, code: int, doc: dict[str, Any]) -> None:
        self._send(code, "application/json", (json.dumps(doc, indent=1) + "\n").encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if code == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(body)

    def _events(self, kinds_param: str) -> None:
        try:
            kinds = {EventKind(k) for k in kinds_param.split(",") if k} or None
        except ValueError:
            allowed = ", ".join(k.value for k in EventKind)
            self._json(400, {"error": f"unknown event kind in {kinds_param!r}; known: {allowed}"})
            return
        subscription = self.app.controller.bus.subscribe(kinds)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.write(self.app.first_event().to_sse())
            self.wfile.flush()
            while True:
                event = subscription.get(timeout=KEEPALIVE_SECONDS)
                if event is None and subscription.closed:
                    return
                self.wfile.write(event.to_sse() if event is not None else b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the client went away
        finally:
            subscription.close()


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None

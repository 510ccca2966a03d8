"""The request API over HTTP, without the HTTP: ``handle(method, path, body)``.

The long-running controller serves this; any transport (``http.server``, an ASGI app, a
test) only has to pass the method, the path and the raw body in, and send the status code
and JSON document back.  Every route is a call to the same :class:`ModelAvailability`
that applications and ``reconcile request|use`` use.

    GET  /v1/status                     the live status of every model (as the status file)
    GET  /v1/models/{name}              the live status of one model
    POST /v1/models/{name}/request      request it: ModelRequestResult (200 even when the
                                        model is not available yet: read ``success``)
    POST /v1/models/{name}/use          record a use; body {"generation_seconds": 12.5}
                                        (optional)
    POST /v1/models/{name}/pause        stop all work on the model until resumed (kept in the
                                        state database); the model's status
    POST /v1/models/{name}/resume       lift the pause; the model's status
    POST /v1/models/{name}/lease        mark it in use: retention never deletes it and an
                                        update never switches it while the lease lives;
                                        body {"ttl_seconds": 60, "holder": "worker-3"}
                                        (optional); answers the lease_id and expires_at.
                                        POST again with {"lease_id": ...} before then to
                                        renew it; 409 while retention is evicting the model
    DELETE /v1/models/{name}/lease[/{lease_id}]  release it (or {"lease_id": ...} in the body)

Errors are JSON too: ``{"error": "..."}`` with 400 (bad body), 404 (unknown model or
route; an unknown model also lists ``declared_models``), 405 (wrong method, with
``allowed``) or 500.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from controller.api.client import ModelAvailability, UnknownModelError
from controller.engine import status_file
from controller.store import leases
from controller.store.state import BeingEvictedError

log = logging.getLogger("modelsync.api")

JSON = dict[str, Any]
Response = tuple[int, JSON]

_MODEL_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/]+)"
    r"(?P<verb>/request|/use|/pause|/resume|/lease(?:/(?P<lease>[^/]+))?)?/?$"
)


class BadRequest(ValueError):
    pass


class Api:
    def __init__(self, client: ModelAvailability) -> None:
        self.client = client

    def handle(self, method: str, path: str, body: bytes | str | None = None) -> Response:
        method = method.upper()
        route = unquote(urlsplit(path).path)
        try:
            return self._route(method, route, body)
        except UnknownModelError as e:
            return 404, {"error": str(e), "declared_models": list(e.declared)}
        except BadRequest as e:
            return 400, {"error": str(e)}
        except Exception as e:  # the transport must always get an answer
            log.exception("%s %s failed", method, route)
            return 500, {"error": f"internal error: {type(e).__name__}: {e}"}

    def _route(self, method: str, route: str, body: bytes | str | None) -> Response:
        if route.rstrip("/") == "/v1/status":
            if method != "GET":
                return _not_allowed("GET")
            return 200, status_file.to_dict(self.client.status_report())
        match = _MODEL_ROUTE.match(route)
        if match is None:
            return 404, {"error": f"no such endpoint: {route}"}
        name, verb = match["name"], match["verb"]
        if verb is None:
            if method != "GET":
                return _not_allowed("GET")
            return 200, self.client.status(name).model_dump(mode="json")
        if verb.startswith("/lease"):
            return _lease(self.client, method, name, match["lease"], _json_object(body))
        if method != "POST":
            return _not_allowed("POST")
        if verb in ("/pause", "/resume"):
            change = self.client.pause if verb == "/pause" else self.client.resume
            return 200, change(name).model_dump(mode="json")
        if verb == "/request":
            result = self.client.request(name)
            code = 404 if result.declared_models else 200
            return code, result.model_dump(mode="json")
        seconds = _generation_seconds(_json_object(body))
        return 200, self.client.record_use(name, seconds).model_dump(mode="json")


def _lease(
    client: ModelAvailability, method: str, name: str, in_path: str | None, data: JSON
) -> Response:
    """POST takes or renews a lease (renew it within its ttl, or it lapses); DELETE ends it.
    The lease id comes from the body's ``lease_id`` or the path's last segment."""
    unknown = sorted(set(data) - {"lease_id", "ttl_seconds", "holder"})
    if unknown:
        raise BadRequest(
            f"unknown field(s) {', '.join(unknown)}; allowed: lease_id, ttl_seconds, holder"
        )
    lease_id = data.get("lease_id", in_path)
    if lease_id is not None and (not isinstance(lease_id, str) or not lease_id):
        raise BadRequest("lease_id must be a non-empty string")
    if method == "DELETE":
        if lease_id is None:
            raise BadRequest("which lease? give lease_id in the body or the path")
        if not client.release_lease(name, lease_id):
            return 404, {"error": f"no lease {lease_id} on {name}"}
        return 200, {"released": True, "lease_id": lease_id, "model": name}
    if method != "POST":
        allowed = ["POST", "DELETE"]
        return 405, {"error": "method not allowed; use POST or DELETE", "allowed": allowed}
    ttl = data.get("ttl_seconds", leases.DEFAULT_TTL_SECONDS)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise BadRequest("ttl_seconds must be a positive number of seconds")
    holder = data.get("holder")
    if holder is not None and not isinstance(holder, str):
        raise BadRequest("holder must be a string")
    try:
        grant = client.acquire_lease(name, ttl_seconds=float(ttl), lease_id=lease_id, holder=holder)
    except BeingEvictedError as e:
        return 409, {"error": str(e)}
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return 200, grant.model_dump(mode="json")


def _not_allowed(allowed: str) -> Response:
    return 405, {"error": f"method not allowed; use {allowed}", "allowed": [allowed]}


def _json_object(body: bytes | str | None) -> JSON:
    if body is None or not (body.strip() if isinstance(body, str) else body.strip()):
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    return data


def _generation_seconds(data: JSON) -> float | None:
    unknown = sorted(set(data) - {"generation_seconds"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; allowed: generation_seconds")
    value = data.get("generation_seconds")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest("generation_seconds must be a number of seconds or null")
    if not math.isfinite(value) or value < 0:
        raise BadRequest("generation_seconds must be a finite number >= 0")
    return float(value)

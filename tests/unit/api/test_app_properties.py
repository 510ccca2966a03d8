"""Generated requests to the HTTP API, served by uvicorn on 127.0.0.1 in front of a controller
that stands still: any method, path and body is answered either with success or with a 4xx
whose JSON body says what was wrong in ``error`` -- never a 5xx or a traceback -- and nothing
is written outside the controller's own state and cache directories."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api.app import create_app
from controller.api.client import ModelAvailability
from controller.api.listener import ApiListener
from tests.support.generated import PROPERTY, documents, tricky_text
from tests.support.standing_controller import StandingController
from tests.unit.api.manifest import write_manifest

DEADLINE = 10.0

ROUTES = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/v1/reconcile",
    "/v1/status",
    "/v1/events",
    "/v1/models/{name}",
    "/v1/models/{name}/request",
    "/v1/models/{name}/use",
    "/v1/models/{name}/pause",
    "/v1/models/{name}/resume",
    "/v1/models/{name}/lease",
    "/v1/models/{name}/lease/{lease_id}",
    "/v1/{name}",
    "/{name}/{lease_id}",
]
# Streams are answered with headers at once and then kept open: they are asked for their
# status only (see ``answer``).
STREAMS = ("/v1/events",)
PROBES = ("/healthz", "/readyz")

names = st.one_of(st.sampled_from(["a", "b", "nope", "..", "%2e%2e", "a/../b"]), tricky_text)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes | None]:
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]))
    template = draw(st.sampled_from(ROUTES))
    path = template.format(
        name=quote(draw(names), safe=draw(st.sampled_from(["", "/"]))),
        lease_id=quote(draw(names), safe=""),
    )
    if draw(st.booleans()):
        path += "?" + draw(st.sampled_from(["", "since=0", "models=a,b", "x=%ff", "timeout=-1"]))
    headers: dict[str, str] = {}
    body_kind = draw(st.sampled_from(["none", "json", "bytes", "text"]))
    body: bytes | None = None
    if body_kind == "json":
        body = json.dumps(draw(documents(max_leaves=8))).encode()
        headers["content-type"] = "application/json"
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=200))
        headers["content-type"] = draw(
            st.sampled_from(["application/json", "text/plain", "application/octet-stream"])
        )
    elif body_kind == "text":
        body = json.dumps(
            draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "generation_seconds": st.one_of(st.floats(), st.integers(), tricky_text),
                        "ttl_seconds": st.one_of(st.floats(), st.integers(), tricky_text),
                        "lease_id": st.one_of(tricky_text, st.integers()),
                        "holder": tricky_text,
                    },
                )
            )
        ).encode()
        headers["content-type"] = "application/json"
    return method, path, headers, body


@contextlib.contextmanager
def served(root: Path) -> Iterator[httpx2.Client]:
    with ModelAvailability(write_manifest(root)) as client:
        controller = StandingController(client.desired)
        app = create_app(controller, token=None, keepalive_seconds=0.2)
        with (
            ApiListener(app, "127.0.0.1", 0) as listener,
            httpx2.Client(base_url=listener.url, timeout=DEADLINE) as http,
        ):
            try:
                yield http
            finally:
                controller.bus.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Path, httpx2.Client]]:
    """A directory holding the controller's root, and a client of the app serving it."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "root"
        root.mkdir()
        with served(root) as http:
            yield Path(directory), http


def files_under(directory: Path) -> set[Path]:
    return {Path(d) / n for d, _dirs, names in os.walk(directory) for n in names}


def answer(
    http: httpx2.Client, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes, str]:
    with http.stream(method, path, headers=headers, content=body) as response:
        if path.split("?")[0] in STREAMS and response.status_code == 200:
            return response.status_code, b"", response.headers.get("content-type", "")
        return response.status_code, response.read(), response.headers.get("content-type", "")


@PROPERTY
@given(requests())
def test_any_request_is_answered_or_refused_with_a_json_4xx(
    sandbox: tuple[Path, httpx2.Client],
    call: tuple[str, str, dict[str, str], bytes | None],
) -> None:
    directory, http = sandbox
    root = directory / "root"
    method, path, headers, body = call

    status, content, content_type = answer(http, method, path, headers, body)

    # The probes answer 503 by design while the controller is not (yet) ready or alive.
    probe = path.split("?")[0] in PROBES and method in ("GET", "HEAD")
    assert status < 500 or (probe and status == 503), (method, path, body, status, content[:500])
    assert b"Traceback" not in content
    if 400 <= status < 500 and method != "HEAD":
        assert content_type.startswith("application/json"), (method, path, content_type)
        error = json.loads(content)
        assert isinstance(error.get("error"), str) and error["error"].strip(), error
    allowed = {root / "models.yaml"}
    outside = {
        f
        for f in files_under(directory)
        if f not in allowed and root / "state" not in f.parents and root / "cache" not in f.parents
    }
    assert not outside, outside

"""The HTTP API: the real app served by uvicorn on 127.0.0.1, over real HTTP, in front of a
controller that stands still (``tests.support.standing_controller``), a real client, real
SQLite and real files.  What a call asked of the loop is read where the loop would find it:
the passes pending in the trigger queue, the models stopped in the running pass."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.api import discovery
from controller.api.app import MAX_BODY, create_app
from controller.api.client import ModelAvailability
from controller.api.events import EventKind
from controller.api.listener import ApiListener
from controller.domain import Phase, Reason
from controller.domain.status import StatusReport
from controller.engine import status_file
from controller.runtime.loop import Trigger
from controller.store import StateStore, leases
from tests.support.standing_controller import StandingController
from tests.unit.api.manifest import write_manifest
from tests.unit.store.samples import begin

TOKEN = "s3cret"
KEEPALIVE = 0.2
DEADLINE = 10.0
T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str) -> T:
    end = time.monotonic() + DEADLINE
    while not (value := condition()):
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)
    return value


@dataclass
class Served:
    controller: StandingController
    client: ModelAvailability  # the same doors, called in-process
    http: httpx2.Client
    url: str

    @contextlib.contextmanager
    def events(self, query: str = "", **headers: str) -> Iterator[Iterator[str]]:
        """The lines of one event stream."""
        with self.http.stream("GET", "/v1/events" + query, headers=headers) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            yield response.iter_lines()


@contextlib.contextmanager
def serve(
    root: Path, *, token: str | None = None, keepalive: float = KEEPALIVE
) -> Iterator[Served]:
    with ModelAvailability(write_manifest(root)) as client:
        controller = StandingController(client.desired)
        app = create_app(controller, token=token, keepalive_seconds=keepalive)
        with (
            ApiListener(app, "127.0.0.1", 0) as listener,
            httpx2.Client(base_url=listener.url, timeout=DEADLINE) as http,
        ):
            try:
                yield Served(controller, client, http, listener.url)
            finally:
                controller.bus.close()  # as a stopping controller does: streams end first


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as served:
        yield served


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the table-driven cases that change nothing."""
    with serve(tmp_path_factory.mktemp("shared")) as served:
        yield served


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("guarded"), token=TOKEN) as served:
        yield served


def without_clock(doc: dict[str, Any]) -> dict[str, Any]:
    """A status document without the times at which it was computed."""
    return {k: v for k, v in doc.items() if k not in ("last_checked", "updatedAt")}


# --------------------------------------------------------------------------- routes and codes

UNKNOWN = "unknown model 'zz'; declared models: a, b"


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "expected"),
    [
        ("GET", "/healthz", None, 200, {"status": "ok"}),
        ("GET", "/readyz", None, 503, {"ready": False, "waiting": "the first reconcile"}),
        ("GET", "/v1/status", None, 200, {"kind": "ModelSetStatus"}),
        ("GET", "/v1/status/", None, 200, {"kind": "ModelSetStatus"}),
        ("GET", "/v1/models/a", None, 200, {"name": "a", "policy": "always"}),
        ("GET", "/v1/models/%61/?verbose=1", None, 200, {"name": "a"}),
        ("GET", "/v1/models/zz", None, 404, {"error": UNKNOWN, "declared_models": ["a", "b"]}),
        ("POST", "/v1/models/zz/request", None, 404, {"error": UNKNOWN, "success": False}),
        ("POST", "/v1/models/zz/use", None, 404, {"declared_models": ["a", "b"]}),
        ("POST", "/v1/models/zz/pause", None, 404, {"declared_models": ["a", "b"]}),
        ("POST", "/v1/models/zz/lease", None, 404, {"declared_models": ["a", "b"]}),
        ("DELETE", "/v1/models/zz/lease/x", None, 404, {"declared_models": ["a", "b"]}),
        ("POST", "/v1/status", None, 405, {"allowed": ["GET"]}),
        ("DELETE", "/v1/models/a", None, 405, {"allowed": ["GET"]}),
        ("GET", "/v1/models/a/request", None, 405, {"allowed": ["POST"]}),
        ("GET", "/v1/models/a/use", None, 405, {"allowed": ["POST"]}),
        ("GET", "/v1/reconcile", None, 405, {"error": "method not allowed; use POST"}),
        (
            "GET",
            "/v1/models/a/lease",
            None,
            405,
            {"error": "method not allowed; use POST or DELETE", "allowed": ["POST", "DELETE"]},
        ),
        ("GET", "/v2/status", None, 404, {"error": "no such endpoint: /v2/status"}),
        (
            "GET",
            "/v1/models/a/delete",
            None,
            404,
            {"error": "no such endpoint: /v1/models/a/delete"},
        ),
        ("GET", "/v1/models/", None, 404, {}),
        ("GET", "/v1/events?kinds=phase,nope", None, 400, {}),
        ("POST", "/v1/models/a/use", b"not json", 400, {}),
        ("POST", "/v1/models/a/use", b"[1]", 400, {}),
        ("POST", "/v1/models/a/use", b'{"generation_seconds": -1}', 400, {}),
        ("POST", "/v1/models/a/use", b'{"generation_seconds": true}', 400, {}),
        ("POST", "/v1/models/a/use", b'{"generation_seconds": "3"}', 400, {}),
        ("POST", "/v1/models/a/use", b'{"generation_seconds": NaN}', 400, {}),
        ("POST", "/v1/models/a/use", b'{"seconds": 3}', 400, {}),
        ("POST", "/v1/models/a/lease", b'{"ttl_seconds": 0}', 400, {}),
        ("POST", "/v1/models/a/lease", b'{"ttl_seconds": "1m"}', 400, {}),
        ("POST", "/v1/models/a/lease", b'{"colour": "red"}', 400, {}),
        ("POST", "/v1/models/a/lease", b'{"lease_id": ""}', 400, {}),
        ("POST", "/v1/models/a/lease", b'{"holder": 3}', 400, {}),
        ("DELETE", "/v1/models/a/lease", None, 400, {}),
        ("POST", "/v1/models/a/use", b" " * (MAX_BODY + 1), 413, {}),
    ],
)
def test_routes_and_their_codes(
    shared: Served,
    method: str,
    path: str,
    body: bytes | None,
    code: int,
    expected: dict[str, Any],
) -> None:
    response = shared.http.request(method, path, content=body)
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert expected.items() <= answer.items()
    if code >= 400 and path != "/readyz":
        assert isinstance(answer["error"], str) and answer["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON"),
        (b"[1]", "body must be a JSON object"),
        (b'{"generation_seconds": -1}', "generation_seconds: Input should be greater than"),
        (b'{"generation_seconds": true}', "generation_seconds: Input should be a valid number"),
        (b'{"generation_seconds": "3"}', "generation_seconds: Input should be a valid number"),
        (b'{"generation_seconds": Infinity}', "generation_seconds: Input should be a finite"),
        (b'{"seconds": 3}', "seconds: Extra inputs are not permitted"),
    ],
)
def test_a_bad_body_says_what_is_wrong_and_records_nothing(
    api: Served, body: bytes, message: str
) -> None:
    response = api.http.post("/v1/models/a/use", content=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    with StateStore.open(api.client.desired.state_dir) as store:
        assert store.usage_events("a") == []


# --------------------------------------------------------------------------- the request API


def test_the_status_is_the_clients_with_what_only_the_controller_knows(api: Served) -> None:
    api.controller.progress.expect("a", [("weights.bin", 1000)])
    api.controller.progress.update("a", "weights.bin", 250, 1000)
    api.controller.problems = ("models.yaml:3: spec.models[0].priority: invalid value 'urgent'",)

    status = api.http.get("/v1/status").json()
    one = api.http.get("/v1/models/a").json()

    expected = api.client.status_report().model_dump(mode="json", by_alias=True)
    live = ("models", "errors", "updatedAt", "node")
    assert {k: v for k, v in status.items() if k not in live} == {
        k: v for k, v in expected.items() if k not in live
    }
    assert status["node"] == discovery.node_name()
    assert status["errors"] == [*api.controller.problems, *expected["errors"]]
    a, b = status["models"]
    assert a["progress"]["bytes_done"] == 250 and a["progress"]["bytes_total"] == 1000
    assert without_clock(b) == without_clock(api.client.status("b").model_dump(mode="json"))
    assert without_clock(one) == without_clock(a)


def test_a_request_is_the_clients_answer_and_a_queued_one_asks_for_a_pass(api: Served) -> None:
    response = api.http.post("/v1/models/b/request")

    assert response.status_code == 200
    answer = response.json()
    assert (answer["phase"], answer["success"]) == ("QUEUED", False)
    assert api.controller.pending() == {Trigger.MODEL}
    # The same answer as a client's, but the controller fetches it: nobody needs to apply.
    alone = api.client.request("b").model_dump(mode="json")
    assert alone["action_required"] == "run `reconcile --apply`"
    assert answer["action_required"] is None
    assert answer["message"].endswith("the running controller fetches it")
    drop = {"message", "action_required"}
    assert {k: v for k, v in answer.items() if k not in drop} == {
        k: v for k, v in alone.items() if k not in drop
    }
    assert api.http.get("/v1/models/b").json()["phase"] == "QUEUED"


def test_an_unknown_model_asks_for_no_pass(api: Served) -> None:
    assert api.http.post("/v1/models/zz/request").status_code == 404
    assert api.controller.pending() == frozenset()


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        ({}, None),
        ({"content": b""}, None),
        ({"content": b"{}"}, None),
        ({"json": {"generation_seconds": 2.5}}, 2.5),
        ({"content": b'{"generation_seconds": 3}'}, 3.0),  # no Content-Type: JSON all the same
        ({"json": {"generation_seconds": None}}, None),
    ],
)
def test_a_use_is_recorded(api: Served, send: dict[str, Any], expected: float | None) -> None:
    before = datetime.now(timezone.utc)
    response = api.http.post("/v1/models/a/use", **send)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model"], answer["generation_seconds"]) == ("a", expected)
    with StateStore.open(api.client.desired.state_dir) as store:
        (event,) = store.usage_events("a")
    assert event.generation_seconds == expected
    assert before <= event.at <= datetime.now(timezone.utc)
    assert datetime.fromisoformat(answer["used_at"].replace("Z", "+00:00")) == event.at


def test_pause_stops_the_models_work_and_resume_asks_for_a_pass(api: Served) -> None:
    paused = api.http.post("/v1/models/a/pause")
    assert paused.status_code == 200 and paused.json()["phase"] == "PAUSED"
    assert api.controller.running_pass.stopped("a")
    assert not api.controller.running_pass.stopped("b")
    assert api.controller.pending() == {Trigger.MODEL}
    assert api.http.get("/v1/models/a").json()["phase"] == "PAUSED"

    resumed = api.http.post("/v1/models/a/resume")
    assert resumed.status_code == 200 and resumed.json()["phase"] != "PAUSED"
    assert api.controller.pending() == {Trigger.MODEL}


def test_a_reconcile_is_asked_for(api: Served) -> None:
    response = api.http.post("/v1/reconcile")
    assert (response.status_code, response.json()) == (202, {"accepted": True})
    assert api.controller.pending() == {Trigger.RECONCILE}


def test_the_api_follows_the_manifests_in_force(api: Served) -> None:
    only_a = dataclasses.replace(api.controller.desired, models=api.controller.desired.models[:1])
    api.controller.desired = only_a  # an edit reloaded by the controller

    response = api.http.get("/v1/models/b")

    assert response.status_code == 404 and response.json()["declared_models"] == ["a"]


def test_an_internal_error_is_a_500_in_json_and_the_api_goes_on(api: Served) -> None:
    api.controller.desired = dataclasses.replace(
        api.controller.desired, state_dir="/dev/null/state"
    )

    response = api.http.get("/v1/status")

    assert response.status_code == 500
    assert response.json()["error"].startswith("internal error:")
    assert api.http.get("/healthz").status_code == 200  # the same connection still answers


# --------------------------------------------------------------------------- leases


def live_leases(api: Served) -> list[tuple[str, str]]:
    now = datetime.now(timezone.utc)
    with StateStore.open(api.client.desired.state_dir) as store:
        return [(x.model, x.id) for x in store.leases() if leases.is_live(x, now)]


def test_a_lease_is_taken_renewed_and_released(api: Served) -> None:
    before = datetime.now(timezone.utc)
    taken = api.http.post("/v1/models/a/lease", json={"ttl_seconds": 30, "holder": "worker-3"})
    assert taken.status_code == 200, taken.text
    grant = taken.json()
    assert (grant["model"], grant["ttl_seconds"], grant["holder"]) == ("a", 30, "worker-3")
    expires = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00"))
    assert (
        before + timedelta(seconds=30)
        <= expires
        <= datetime.now(timezone.utc) + timedelta(seconds=30)
    )
    lease_id = grant["lease_id"]
    assert live_leases(api) == [("a", lease_id)]

    renewed = api.http.post("/v1/models/a/lease", json={"lease_id": lease_id})
    assert renewed.status_code == 200 and renewed.json()["lease_id"] == lease_id
    by_path = api.http.post(f"/v1/models/a/lease/{lease_id}")
    assert by_path.status_code == 200 and by_path.json()["lease_id"] == lease_id
    assert live_leases(api) == [("a", lease_id)]  # renewed, not a second lease

    done = api.http.delete(f"/v1/models/a/lease/{lease_id}")
    assert done.json() == {"released": True, "lease_id": lease_id, "model": "a"}
    assert live_leases(api) == []
    again = api.http.request("DELETE", "/v1/models/a/lease", json={"lease_id": lease_id})
    assert again.status_code == 404 and again.json() == {"error": f"no lease {lease_id} on a"}


def test_a_lease_of_another_model_is_refused(api: Served) -> None:
    lease_id = api.http.post("/v1/models/a/lease").json()["lease_id"]
    response = api.http.post("/v1/models/b/lease", json={"lease_id": lease_id})
    assert response.status_code == 400 and "is for a, not b" in response.json()["error"]


def test_a_lease_while_the_model_is_evicted_is_409(api: Served) -> None:
    with StateStore.open(api.client.desired.state_dir) as store:
        begin(store, Reason.OVER_BUDGET)

    response = api.http.post("/v1/models/a/lease")

    assert response.status_code == 409 and "being evicted" in response.json()["error"]
    assert live_leases(api) == []


# --------------------------------------------------------------------------- probes, metrics


def test_healthz_follows_the_loop(api: Served) -> None:
    assert api.http.get("/healthz").json() == {"status": "ok"}
    api.controller.alive = False
    response = api.http.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "loop stopped"})


def test_readyz_waits_for_every_always_model(api: Served) -> None:
    report = api.client.status_report()
    api.controller.report = report
    response = api.http.get("/readyz")
    assert response.status_code == 503
    a = report.models[0]
    assert response.json() == {
        "ready": False,
        "waiting": [{"model": "a", "phase": a.phase.value, "message": a.message}],
    }

    api.controller.report = available(report)
    response = api.http.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"ready": True, "waiting": []})


def available(report: StatusReport) -> StatusReport:
    return report.model_copy(
        update={
            "summary": report.summary.model_copy(update={"ready": True}),
            "models": tuple(m.model_copy(update={"phase": Phase.AVAILABLE}) for m in report.models),
        }
    )


def test_metrics_are_the_controllers_and_the_process(api: Served) -> None:
    api.controller.metrics.record_pass(0.3, ok=True)
    api.controller.report = available(api.client.status_report())

    response = api.http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("modelsync_reconciles_total", ())] == 1
    assert samples[("modelsync_ready", ())] == 1
    assert samples[("modelsync_model_phase", (("model", "a"), ("phase", "AVAILABLE")))] == 1
    assert samples[("process_resident_memory_bytes", ())] > 1_000_000
    openmetrics = api.http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


# --------------------------------------------------------------------------- events


def frames(lines: Iterator[str], count: int) -> list[list[str]]:
    """The next ``count`` frames (blank-line-separated groups of lines) of a stream."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            found.append(current)
            current = []
            if len(found) == count:
                break
    return found


def test_a_stream_starts_with_the_status_then_carries_each_event(tmp_path: Path) -> None:
    # Keep-alives far apart: an event must come when published, not with the next one.
    with serve(tmp_path, keepalive=3 * DEADLINE) as api:
        report = api.client.status_report()
        api.controller.report = report
        with api.events() as lines:
            retry, status = frames(lines, 2)
            published = api.controller.bus.publish(EventKind.PHASE, {"model": "a"})
            (phase,) = frames(lines, 1)
    assert retry == ["retry: 2000"]
    assert status[:2] == ["id: 0", "event: status"]
    first = json.loads(status[2].removeprefix("data: "))
    assert first["status"] == status_file.to_dict(report)  # the status file's document
    assert phase == published.to_sse().decode().strip().split("\n")


def test_kinds_narrow_the_stream_and_quiet_streams_get_a_keep_alive(api: Served) -> None:
    with api.events("?kinds=phase") as lines:
        api.controller.bus.publish(EventKind.PROGRESS, {"model": "a"})
        api.controller.bus.publish(EventKind.PHASE, {"model": "a"})
        _, _, phase, quiet = frames(lines, 4)
    assert phase[1] == "event: phase"
    assert quiet == [": keep-alive"]


def test_a_stream_ends_when_the_controller_stops(api: Served) -> None:
    with api.events() as lines:
        frames(lines, 2)
        api.controller.bus.close()
        assert list(lines) == []  # the response ends: no more lines, no error


def test_a_client_that_goes_is_unsubscribed(api: Served) -> None:
    with api.events() as lines:
        frames(lines, 2)
        assert api.controller.bus.subscribers == 1
    wait_until(lambda: api.controller.bus.subscribers == 0, "the stream to be dropped")


def test_applications_follow_the_stream_through_the_client(api: Served) -> None:
    received: list[dict[str, Any]] = []
    follower = api.client.subscribe(received.append, url=api.url, kinds=[EventKind.PHASE])
    try:
        assert follower.connected.wait(DEADLINE)
        wait_until(lambda: received, "the first event")
        api.controller.bus.publish(EventKind.PHASE, {"model": "a", "phase": "AVAILABLE"})
        wait_until(lambda: len(received) == 2, "the phase event")
    finally:
        follower.close()
    assert [e["kind"] for e in received] == ["status", "phase"]
    assert received[1]["phase"] == "AVAILABLE"


def test_a_queued_request_elsewhere_nudges_the_running_controller(api: Served) -> None:
    publish_info(api)
    with ModelAvailability.from_desired(api.client.desired) as application:
        assert application.request("b").phase is Phase.QUEUED
    assert api.controller.pending() == {Trigger.MODEL}


# --------------------------------------------------------------------------- the document


def test_openapi_documents_every_route_with_its_schemas(shared: Served) -> None:
    doc = shared.http.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths) >= {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/events",
        "/v1/reconcile",
        "/v1/status",
        "/v1/models/{name}",
        "/v1/models/{name}/request",
        "/v1/models/{name}/use",
        "/v1/models/{name}/pause",
        "/v1/models/{name}/resume",
        "/v1/models/{name}/lease",
        "/v1/models/{name}/lease/{lease_id}",
    }

    def answer(path: str, method: str, code: str = "200") -> str:
        content = paths[path][method]["responses"][code]["content"]
        return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]

    assert answer("/v1/status", "get") == "StatusReport"
    assert answer("/v1/models/{name}", "get") == "ModelStatus"
    assert answer("/v1/models/{name}/request", "post") == "ModelRequestResult"
    assert answer("/v1/models/{name}/lease", "post") == "LeaseGrant"
    assert answer("/v1/models/{name}/lease", "post", "409") == "ApiError"
    body = paths["/v1/models/{name}/use"]["post"]["requestBody"]["content"]["application/json"]
    assert "UseBody" in json.dumps(body["schema"])
    schemas = doc["components"]["schemas"]
    assert {"StatusReport", "ModelStatus", "ModelProgress", "LeaseBody"} <= set(schemas)
    assert "observedGeneration" in schemas["StatusReport"]["properties"]  # the file's names
    assert all("422" not in op["responses"] for p in paths.values() for op in p.values())
    assert "securitySchemes" not in doc.get("components", {})  # no token, no scheme


# --------------------------------------------------------------------------- auth

GUARDED = [
    ("GET", "/metrics", 200),
    ("GET", "/openapi.json", 200),
    ("GET", "/v1/status", 200),
    ("GET", "/v1/models/a", 200),
    ("POST", "/v1/models/a/use", 200),
    ("POST", "/v1/models/b/request", 200),
    ("POST", "/v1/reconcile", 202),
    ("DELETE", "/v1/models/a/lease/nope", 404),
    ("GET", "/v1/events?kinds=nope", 400),
]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x", "Bearer"],
)
@pytest.mark.parametrize(("method", "path", "code"), GUARDED)
def test_every_route_but_the_probes_needs_the_token(
    guarded: Served, method: str, path: str, code: int, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = guarded.http.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "missing or wrong bearer token (see MODELSYNC_API_TOKEN)"}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
@pytest.mark.parametrize(("method", "path", "code"), GUARDED)
def test_with_the_token_every_route_answers(
    guarded: Served, method: str, path: str, code: int, scheme: str
) -> None:
    response = guarded.http.request(method, path, headers={"Authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == code, response.text


@pytest.mark.parametrize(("path", "code"), [("/healthz", 200), ("/readyz", 503)])
def test_probes_stay_open(guarded: Served, path: str, code: int) -> None:
    assert guarded.http.get(path).status_code == code


def test_the_stream_and_its_followers_need_the_token_too(guarded: Served) -> None:
    with guarded.events(Authorization=f"Bearer {TOKEN}") as lines:
        assert frames(lines, 1) == [["retry: 2000"]]
    refused: list[dict[str, Any]] = []
    follower = guarded.client.subscribe(refused.append, url=guarded.url)
    try:
        assert not follower.connected.wait(0.5)
    finally:
        follower.close()
    assert refused == []


def test_the_document_names_the_bearer_scheme(guarded: Served) -> None:
    doc = guarded.http.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/status"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def publish_info(served: Served) -> Path:
    """What a running controller writes beside its claim on the cache."""
    info = discovery.Info(pid=1, url=served.url, started_at="now", manifests="m")
    state = Path(served.client.desired.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / discovery.INFO_NAME).write_text(json.dumps(dataclasses.asdict(info)))
    return state


def test_a_nudge_carries_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(discovery.TOKEN_ENV, raising=False)
    with serve(tmp_path, token=TOKEN) as guarded:
        state = publish_info(guarded)
        assert discovery.nudge(state, "/v1/reconcile") is False  # refused without it
        assert guarded.controller.pending() == frozenset()
        monkeypatch.setenv(discovery.TOKEN_ENV, TOKEN)
        assert discovery.nudge(state, "/v1/reconcile") is True
        assert guarded.controller.pending() == {Trigger.RECONCILE}

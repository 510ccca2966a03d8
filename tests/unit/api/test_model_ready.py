"""A model's readiness route, a startup probe's door: open like ``/readyz``, 200 only when
the model is AVAILABLE, and nothing beyond its phase for a caller without the token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.api import discovery
from controller.domain import Phase
from tests.support.status_reports import model_status as status
from tests.support.status_reports import status_report as report
from tests.unit.api.test_app import TOKEN, Served, serve

SECRET = "hf_" + "x" * 34  # a token a hub's error might quote


@pytest.fixture
def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv(discovery.NODE_ENV, "gpu-node-7")
    with serve(tmp_path, token=TOKEN) as served:
        yield served


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_before_the_first_pass_no_model_is_ready(guarded: Served) -> None:
    answer = guarded.http.get("/v1/models/a/ready")
    assert answer.status_code == 503
    assert answer.json() == {"model": "a", "ready": False, "phase": None, "message": None}


def test_ready_only_when_available_and_the_message_only_with_the_token(guarded: Served) -> None:
    guarded.controller.report = report(
        status("a", Phase.AVAILABLE), status("b", Phase.FAILED, f"401 for {SECRET}: gated")
    )

    ready = guarded.http.get("/v1/models/a/ready")
    failed = guarded.http.get("/v1/models/b/ready")
    told = guarded.http.get("/v1/models/b/ready", headers=BEARER)

    assert (ready.status_code, ready.json()["phase"], ready.json()["ready"]) == (
        200,
        "AVAILABLE",
        True,
    )
    assert failed.status_code == 503
    assert failed.json() == {"model": "b", "ready": False, "phase": "FAILED", "message": None}
    assert told.status_code == 503
    assert told.json()["message"] == f"401 for {SECRET}: gated"  # the caller has the token
    wrong = guarded.http.get("/v1/models/b/ready", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 503 and wrong.json()["message"] is None


def test_a_model_declared_since_the_last_pass_is_not_ready(guarded: Served) -> None:
    guarded.controller.report = report(status("a", Phase.AVAILABLE))
    answer = guarded.http.get("/v1/models/b/ready", headers=BEARER)
    assert answer.status_code == 503
    assert answer.json()["message"] == "not reconciled yet"


def test_an_unknown_model_is_404_and_only_the_token_lists_the_declared(guarded: Served) -> None:
    open_answer = guarded.http.get("/v1/models/zz/ready")
    told = guarded.http.get("/v1/models/zz/ready", headers=BEARER)
    assert (open_answer.status_code, open_answer.json()) == (404, {"error": "unknown model: zz"})
    assert told.status_code == 404
    assert told.json()["declared_models"] == ["a", "b"]


def test_the_route_is_in_the_api_document_and_other_methods_are_refused(guarded: Served) -> None:
    document = guarded.http.get("/openapi.json", headers=BEARER).json()
    assert "get" in document["paths"]["/v1/models/{name}/ready"]
    refused = guarded.http.post("/v1/models/a/ready", headers=BEARER)
    assert (refused.status_code, refused.json()["allowed"]) == (405, ["GET"])


def test_the_status_and_the_metrics_name_the_node(guarded: Served) -> None:
    guarded.controller.report = report(status("a", Phase.AVAILABLE))
    body = guarded.http.get("/v1/status", headers=BEARER).json()
    assert body["node"] == "gpu-node-7"

    text = guarded.http.get("/metrics", headers=BEARER).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (info,) = families["modelsync_controller_info"].samples
    assert (info.labels["node"], info.value) == ("gpu-node-7", 1.0)
    phases = families["modelsync_model_phase"].samples
    assert {"model": "a", "phase": "AVAILABLE"} in [s.labels for s in phases if s.value == 1]


def test_without_a_token_every_caller_gets_the_message(tmp_path: Path) -> None:
    # Loopback with no token: every caller is this machine's, as for the guarded routes.
    with serve(tmp_path) as served:
        served.controller.report = report(status("a", Phase.MISSING, "not in the cache"))
        answer = served.http.get("/v1/models/a/ready").json()
    assert (answer["phase"], answer["message"]) == ("MISSING", "not in the cache")

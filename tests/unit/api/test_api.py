"""The HTTP request API, driven directly through its transport-free handler."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from controller.api.client import ModelAvailability
from controller.api.routes import Api
from controller.store.state import StateStore
from tests.unit.factories import NOW


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ModelAvailability]:
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "api"},
        "spec": {
            "cache": str(tmp_path / "cache"),
            "state": str(tmp_path / "state"),
            "endpoint": "http://127.0.0.1:9",
            "models": [
                {"name": "a", "repo": "org/a"},
                {"name": "b", "repo": "org/b", "policy": "on-demand", "alternatives": ["a"]},
            ],
        },
    }
    manifest = tmp_path / "models.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    with ModelAvailability(manifest, clock=lambda: NOW) as c:
        yield c


@pytest.fixture
def api(client: ModelAvailability) -> Api:
    return Api(client)


def test_status_of_everything_and_of_one_model(api: Api, client: ModelAvailability) -> None:
    code, body = api.handle("GET", "/v1/status")
    assert code == 200 and body["kind"] == "ModelSetStatus"
    assert [m["name"] for m in body["models"]] == ["a", "b"]
    code, one = api.handle("GET", "/v1/models/a")
    assert code == 200 and one == client.status("a").model_dump(mode="json")
    assert one == body["models"][0]


def test_request_returns_what_the_client_returns(api: Api, client: ModelAvailability) -> None:
    code, body = api.handle("POST", "/v1/models/b/request", b"")
    assert code == 200
    assert body["phase"] == "QUEUED" and body["success"] is False
    assert body == client.request("b").model_dump(mode="json")
    assert api.handle("GET", "/v1/models/b")[1]["phase"] == "QUEUED"


@pytest.mark.parametrize(
    ("body", "expected"),
    [(None, None), (b"", None), ("{}", None), (b'{"generation_seconds": 2.5}', 2.5)],
)
def test_use_is_recorded(
    api: Api, client: ModelAvailability, body: bytes | str | None, expected: float | None
) -> None:
    code, answer = api.handle("POST", "/v1/models/a/use", body)
    assert code == 200
    assert answer == {
        "model": "a",
        "used_at": NOW.isoformat().replace("+00:00", "Z"),
        "generation_seconds": expected,
    }
    with StateStore.open(client.desired.state_dir) as store:
        (event,) = store.usage_events("a")
    assert (event.at, event.generation_seconds) == (NOW, expected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON"),
        (b"[1]", "body must be a JSON object"),
        (b'{"generation_seconds": -1}', "finite number >= 0"),
        (b'{"generation_seconds": true}', "must be a number"),
        (b'{"generation_seconds": "3"}', "must be a number"),
        (b'{"seconds": 3}', "unknown field(s) seconds"),
    ],
)
def test_bad_use_bodies_are_400_and_record_nothing(
    api: Api, client: ModelAvailability, body: bytes, message: str
) -> None:
    code, answer = api.handle("POST", "/v1/models/a/use", body)
    assert code == 400 and message in answer["error"]
    assert client.status("a").usage_frequency == 0.0


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models/zz"), ("POST", "/v1/models/zz/request"), ("POST", "/v1/models/zz/use")],
)
def test_unknown_models_are_404_with_the_declared_names(api: Api, method: str, path: str) -> None:
    code, body = api.handle(method, path)
    assert code == 404
    assert body["error"] == "unknown model 'zz'; declared models: a, b"
    assert body["declared_models"] == ["a", "b"]


@pytest.mark.parametrize(
    ("method", "path", "code", "allowed"),
    [
        ("POST", "/v1/status", 405, ["GET"]),
        ("DELETE", "/v1/models/a", 405, ["GET"]),
        ("GET", "/v1/models/a/request", 405, ["POST"]),
        ("GET", "/v1/models/a/use", 405, ["POST"]),
        ("GET", "/v2/status", 404, None),
        ("GET", "/v1/models/a/delete", 404, None),
        ("GET", "/v1/models/", 404, None),
    ],
)
def test_routes_and_methods(
    api: Api, method: str, path: str, code: int, allowed: list[str] | None
) -> None:
    status, body = api.handle(method, path)
    assert status == code and "error" in body
    assert body.get("allowed") == allowed


def test_paths_are_decoded_and_query_strings_ignored(api: Api) -> None:
    assert api.handle("get", "/v1/models/%61/?verbose=1")[0] == 200
    assert api.handle("GET", "/v1/status/")[0] == 200


def test_responses_are_json_documents(api: Api) -> None:
    for method, path in [("GET", "/v1/status"), ("POST", "/v1/models/b/request")]:
        _, body = api.handle(method, path)
        assert json.loads(json.dumps(body)) == body


def test_an_internal_error_is_a_500_not_an_exception(api: Api, client: ModelAvailability) -> None:
    client.close()
    client.desired = dataclasses.replace(client.desired, state_dir="/dev/null/state")
    code, body = api.handle("GET", "/v1/status")
    assert code == 500 and body["error"].startswith("internal error:")

"""Where the API listens: who may be served without a token, the port, and a prompt stop."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI

from controller.api.app import create_app
from controller.api.client import ModelAvailability
from controller.api.listener import ApiListener, InsecureBind, check_bind, is_loopback
from tests.support.standing_controller import StandingController
from tests.unit.api.manifest import write_manifest


def test_only_loopback_may_be_served_without_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "secret")
    with pytest.raises(InsecureBind, match="MODELSYNC_API_TOKEN"):
        check_bind("0.0.0.0", None)


@pytest.fixture
def controller(tmp_path: Path) -> StandingController:
    with ModelAvailability(write_manifest(tmp_path)) as client:
        return StandingController(client.desired)


@pytest.fixture
def app(controller: StandingController) -> FastAPI:
    return create_app(controller)


def test_port_0_is_bound_at_once_and_its_url_names_the_real_port(app: FastAPI) -> None:
    listener = ApiListener(app, "127.0.0.1", 0)
    try:
        port = int(listener.url.rsplit(":", 1)[1])
        assert listener.url == f"http://127.0.0.1:{port}" and port > 0
        # Bound before uvicorn starts: a second listener cannot have the port.
        with pytest.raises(OSError):
            ApiListener(app, "127.0.0.1", port)
        listener.start()
        assert httpx2.get(listener.url + "/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        listener.stop()
    assert not listener.failed


def test_a_wildcard_bind_is_reached_through_loopback(app: FastAPI) -> None:
    with ApiListener(app, "0.0.0.0", 0) as listener:
        assert listener.url.startswith("http://127.0.0.1:")
        assert httpx2.get(listener.url + "/healthz", timeout=10).status_code == 200


def test_a_port_in_use_is_refused_with_the_os_error(app: FastAPI) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            ApiListener(app, "127.0.0.1", port)


def test_stopping_is_prompt_with_clients_still_connected(
    app: FastAPI, controller: StandingController
) -> None:
    listener = ApiListener(app, "127.0.0.1", 0)
    listener.start()
    with httpx2.Client(base_url=listener.url, timeout=10) as idle:
        assert idle.get("/healthz").status_code == 200  # its connection stays open, idle
        with idle.stream("GET", "/v1/events") as stream:
            next(stream.iter_lines())
            controller.bus.close()  # as the controller does before it stops the API
            asked = time.monotonic()
            listener.stop()
            took = time.monotonic() - asked
    assert took < 2.0, f"stopping took {took:.1f} s"
    assert not listener.failed
    with pytest.raises(httpx2.TransportError):
        httpx2.get(listener.url + "/healthz", timeout=2)

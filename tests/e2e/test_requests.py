"""The request API end to end: the real CLI, a real hub, real files and SQLite."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx2
import pytest

from controller.api import discovery
from controller.api.app import create_app
from controller.api.client import ModelAvailability
from controller.api.listener import ApiListener
from controller.store import StateStore
from tests.support.cli import Workdir
from tests.support.hub import LocalHub
from tests.support.standing_controller import StandingController

TINY = {"config.json": b'{"model_type": "tiny"}', "model.safetensors": bytes(range(256)) * 4096}
BIG = {"config.json": b'{"model_type": "big"}', "model.safetensors": bytes(range(256)) * 8192}


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", TINY)
    hub.publish("org/big", BIG)
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest(
        [
            {"name": "tiny", "repo": "org/tiny", "tags": ["video"]},
            {
                "name": "big",
                "repo": "org/big",
                "policy": "on-demand",
                "tags": ["video"],
                "alternatives": ["tiny"],
            },
        ]
    )
    first = w.reconcile("--apply")
    assert first.code == 0, first.out + first.err
    assert w.model_status("big")["reason"] == "NotRequested"
    return w


def pending_requests(work: Workdir) -> dict[str, datetime]:
    reader = StateStore.open_readonly(work.state)
    assert reader is not None
    with reader:
        return reader.requests()


def test_on_demand_request_is_queued_and_the_next_apply_fetches_it(work: Workdir) -> None:
    assert not (work.cache / "models--org--big").exists()
    run = work.reconcile("request", "big", "--json")
    assert run.code == 2, run.out + run.err  # accepted, not available yet
    result = run.json()
    assert (result["success"], result["phase"], result["reason"]) == (False, "QUEUED", "Requested")
    assert result["queue_position"] == 1
    assert 0 < result["estimated_wait_seconds"] < 3600
    assert result["alternatives"] == ["tiny"]
    assert result["action_required"] == "run `reconcile --apply`"
    assert list(pending_requests(work)) == ["big"]

    plan = work.reconcile("--plan", "--json").json()
    assert [(a["kind"], a["model"], a["priority"]) for a in plan["actions"]] == [
        ("download", "big", "low")
    ]
    assert plan["actions"][0]["priority_reason"] == "priority low (auto: 0 uses/day)"

    applied = work.reconcile("--apply")
    assert applied.code == 0, applied.out + applied.err
    status = work.model_status("big")
    assert (status["phase"], status["queue_position"]) == ("AVAILABLE", None)
    assert pending_requests(work) == {}  # fulfilled

    again = work.reconcile("request", "big")
    assert again.code == 0, again.out + again.err
    assert again.out.startswith("big: AVAILABLE")


def test_request_wait_returns_once_a_reconcile_fetched_the_model(work: Workdir) -> None:
    waiting = work.start("request", "big", "--wait", "--timeout", "120")
    try:
        deadline = time.monotonic() + 30
        while "big" not in pending_requests(work):
            assert waiting.poll() is None, "request --wait exited before it was fulfilled"
            assert time.monotonic() < deadline, "the request was never recorded"
            time.sleep(0.05)
        applied = work.reconcile("--apply")
        assert applied.code == 0, applied.out + applied.err
        assert waiting.wait(timeout=60) == 0
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_request_wait_gives_up_at_the_timeout(work: Workdir) -> None:
    run = work.reconcile("request", "big", "--wait", "--timeout", "0.5")
    assert run.code == 2
    assert "timed out after 0.5 s; big is QUEUED" in run.err


def test_three_doors_give_the_same_result(work: Workdir) -> None:
    with ModelAvailability(work.manifests) as client:
        # The HTTP door as a controller serves it, in front of a controller standing still.
        app = create_app(StandingController(client.desired))
        with ApiListener(app, "127.0.0.1", 0) as listener:
            # Published as a running controller publishes itself, so every door knows that
            # a controller serves these manifests (and fetches what is queued).
            info = discovery.Info(pid=1, url=listener.url, started_at="now", manifests="m")
            state = Path(client.desired.state_dir)
            state.mkdir(parents=True, exist_ok=True)
            (state / discovery.INFO_NAME).write_text(json.dumps(dataclasses.asdict(info)))
            for name in ("tiny", "big", "nope"):
                python = client.request(name).model_dump(mode="json")
                cli = work.reconcile("request", name, "--json")
                response = httpx2.post(f"{listener.url}/v1/models/{name}/request", timeout=30)
                assert cli.json() == python == response.json(), name
                codes = (cli.code, response.status_code)
                assert codes == {"tiny": (0, 200), "big": (2, 200), "nope": (1, 404)}[name]
    assert python["error"] == "unknown model 'nope'; declared models: tiny, big"


def test_unknown_model_on_the_command_line(work: Workdir) -> None:
    run = work.reconcile("request", "nope")
    assert run.code == 1
    assert "unknown model 'nope'; declared models: tiny, big" in run.out
    use = work.reconcile("use", "nope")
    assert use.code == 1 and "declared models: tiny, big" in use.err


def test_uses_reach_status_and_priorities_and_old_ones_are_pruned(work: Workdir) -> None:
    now = datetime.now(timezone.utc)
    with StateStore.open(work.state) as store:
        store.record_use("tiny", now - timedelta(days=31))  # outside the 30-day window
    for seconds in ("2", "3", "4"):
        run = work.reconcile("use", "tiny", "--generation-seconds", seconds)
        assert run.code == 0, run.err
        assert run.out.strip() == f"recorded a use of tiny ({seconds} s to generate)"
    assert work.reconcile("use", "tiny", "--json").json()["generation_seconds"] is None

    applied = work.reconcile("--apply")
    assert applied.code == 0, applied.out + applied.err
    tiny = work.model_status("tiny")
    assert tiny["usage_frequency"] == pytest.approx(4 / 30, abs=1e-6)
    assert tiny["effective_priority"] == "medium" and tiny["priority"] == "auto"
    assert tiny["average_generation_seconds"] == 3.0
    assert datetime.fromisoformat(tiny["last_used"]) >= now
    with StateStore.open(work.state) as store:
        assert len(store.usage_events("tiny")) == 4  # the 31-day-old use was pruned

    table = work.reconcile("status")
    assert table.code == 0
    assert any(
        line.split()[:4] == ["tiny", "AVAILABLE", "medium", "0.13"]
        for line in table.out.splitlines()
    ), table.out

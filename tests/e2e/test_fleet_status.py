"""``reconcile status --from``: one view of several running controllers, each with its own
cache and state, over their real HTTP APIs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Workdir, reconcile, wait_until
from tests.support.hub import LocalHub

TOKEN = "fleet-token"
TINY = {"config.json": b'{"model_type": "tiny"}', "model.safetensors": bytes(range(256)) * 4096}
QUIET = {"port": 0, "resync_interval": "1h", "update_check_interval": None}
NOWHERE = "http://127.0.0.1:9"  # the discard port: a controller that is down


def start(work: Workdir, node: str, started: list[subprocess.Popen[bytes]]) -> str:
    env = {"MODELSYNC_API_TOKEN": TOKEN, "MODELSYNC_NODE_NAME": node}
    proc = work.start("--watch", env=env, log=work.root / "controller.log")
    started.append(proc)
    info = work.state / "controller.json"

    def published() -> str | None:
        assert proc.poll() is None, (work.root / "controller.log").read_text()
        try:
            data = json.loads(info.read_text())
        except (OSError, ValueError):
            return None
        return str(data["url"]) if data["pid"] == proc.pid else None

    url: str = wait_until(published, f"{node}'s controller to publish its address")
    return url


@pytest.fixture
def fleet(tmp_path: Path, hub: LocalHub) -> Iterator[tuple[str, str]]:
    hub.publish("org/tiny", TINY)
    a = Workdir(tmp_path / "a", hub.url)
    a.write_manifest([{"name": "tiny", "repo": "org/tiny"}], controller=QUIET)
    b = Workdir(tmp_path / "b", hub.url)
    b.write_manifest(
        [{"name": "tiny", "repo": "org/tiny"}, {"name": "ghost", "repo": "org/not-on-the-hub"}],
        controller=QUIET,
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        urls = start(a, "gpu-a", started), start(b, "gpu-b", started)
        wait_until(
            lambda: (
                a.status_file.exists()
                and b.status_file.exists()
                and a.model_status("tiny")["phase"] == "AVAILABLE"
                and b.model_status("ghost")["phase"] == "FAILED"
            ),
            "both nodes to finish their first pass",
        )
        yield urls
    finally:
        for proc in started:
            proc.terminate()
            proc.wait(30)


def test_one_table_of_node_by_model_and_an_unreachable_row(fleet: tuple[str, str]) -> None:
    a, b = fleet
    run = reconcile(
        "status", "--from", a, "--from", b, "--from", NOWHERE, env={"MODELSYNC_API_TOKEN": TOKEN}
    )

    assert run.code == 1, run.out + run.err  # one controller did not answer
    lines = run.out.splitlines()
    assert lines[0].split() == ["NODE", "tiny", "ghost", "NOTE"]
    assert lines[1].split() == ["gpu-a", "AVAILABLE", "-"]
    assert lines[2].split()[:3] == ["gpu-b", "AVAILABLE", "FAILED"]  # then its errors
    assert lines[3].startswith(f"{NOWHERE}  ?")
    assert "unreachable: ConnectError" in lines[3]
    assert lines[-1].startswith(
        "1 of 2 models AVAILABLE on all 2 nodes that answered; 1 node behind (gpu-b); "
    )
    assert lines[-1].endswith("; 1 of 3 unreachable")
    assert TOKEN not in run.out + run.err
    assert "Traceback" not in run.err


def test_json_and_exit_0_when_every_controller_answers(fleet: tuple[str, str]) -> None:
    a, b = fleet
    run = reconcile(
        "status", "--from", a, "--from", b, "--json", env={"MODELSYNC_API_TOKEN": TOKEN}
    )
    assert run.code == 0, run.out + run.err
    document = run.json()
    assert [n["node"] for n in document["nodes"]] == ["gpu-a", "gpu-b"]
    assert document["nodes"][1]["models"]["ghost"]["phase"] == "FAILED"
    assert document["summary"]["available_everywhere"] == ["tiny"]
    assert document["summary"]["nodes_behind"] == ["gpu-b"]
    assert document["summary"]["unreachable"] == []


def test_without_the_token_each_controller_says_so(fleet: tuple[str, str]) -> None:
    a, _ = fleet
    run = reconcile("status", "--from", a, env={"MODELSYNC_API_TOKEN": ""})
    assert run.code == 1
    assert "unreachable: refused the token (set MODELSYNC_API_TOKEN)" in run.out


def test_from_goes_alone() -> None:
    run = reconcile("status", "--from", NOWHERE, "--status-file", "x.yaml")
    assert (run.code, run.err) == (
        1,
        "reconcile: status: --from asks controllers; give it without -f or --status-file\n",
    )

"""What ``request`` advises matches the situation: a running controller fetches what is
queued, and a paused model whose files are there is usable."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from controller.api.client import ModelAvailability
from tests.support.cli import Run, Workdir, wait_until
from tests.support.hub import LocalHub

WEIGHTS = b"\x05" * 300_000
# No schedule of its own during the test: every pass is one this test asked for.
QUIET = {"resync_interval": "1h", "update_check_interval": None, "health_check_interval": None}


def ok(run: Run, code: int = 0) -> Run:
    assert run.code == code, run.out + run.err
    return run


def test_with_a_controller_running_a_request_says_the_controller_fetches_it(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish("org/lazy", {"config.json": b"{}", "weights.bin": WEIGHTS})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(
        [{"name": "lazy", "repo": "org/lazy", "policy": "on-demand"}], controller=QUIET
    )
    # The controller's pass stops at the weights, so the answer is given while it works.
    hold = hub.faults.hold("*/weights.bin", after_bytes=1000)
    proc = work.start("--watch", "--port", "0", log=tmp_path / "controller.log")
    try:
        info = work.state / "controller.json"
        wait_until(info.exists, "the controller to publish its address")
        wait_until(lambda: work.status_file.exists(), "the controller's first status")
        answer: dict[str, Any] = ok(work.reconcile("request", "lazy", "--json"), 2).json()
        assert answer["action_required"] is None, answer
        assert "reconcile --apply" not in answer["message"], answer

        # The Python client's pause reaches the controller, which stops the transfer now.
        with ModelAvailability(work.manifests) as client:
            wait_until(hold.reached.is_set, "the download to start")
            client.pause("lazy")
        # At once, not at the controller's next look at the state database (30 s or more).
        wait_until(
            lambda: work.model_status("lazy")["phase"] == "PAUSED",
            "the controller to pause it",
            deadline=15,
        )
    finally:
        hold.release()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_paused_model_whose_files_are_there_is_usable(tmp_path: Path, hub: LocalHub) -> None:
    hub.publish("org/tiny", {"config.json": b"{}", "weights.bin": WEIGHTS})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "tiny", "repo": "org/tiny"}])
    ok(work.reconcile("--apply"))
    ok(work.reconcile("pause", "tiny"))

    answer = ok(work.reconcile("request", "tiny", "--json")).json()
    assert answer["success"] is True and answer["error"] is None
    assert "paused" in answer["message"] and "suspend" not in json.dumps(answer)

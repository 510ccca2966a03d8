"""``reconcile wait`` end to end: the real CLI waiting while a real apply fetches from a
local hub, as an init container waits for its node's controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import DEADLINE_S, Workdir
from tests.support.hub import LocalHub

TINY = {"config.json": b'{"model_type": "tiny"}', "model.safetensors": bytes(range(256)) * 4096}


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", TINY)
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest(
        [{"name": "tiny", "repo": "org/tiny"}, {"name": "ghost", "repo": "org/not-on-the-hub"}]
    )
    return w


def test_a_wait_started_before_the_apply_ends_when_the_model_arrives(work: Workdir) -> None:
    log = work.root / "wait.log"
    waiting = work.start("wait", "tiny", "--timeout", str(DEADLINE_S), log=log)
    try:
        applied = work.reconcile("--apply")
        code = waiting.wait(DEADLINE_S)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert work.model_status("tiny")["phase"] == "AVAILABLE", applied.out + applied.err
    assert code == 0, log.read_text()
    assert log.read_text().splitlines() == ["tiny: AVAILABLE"]


def test_a_failed_model_exits_1_with_its_message(work: Workdir) -> None:
    work.reconcile("--apply")
    assert work.model_status("ghost")["phase"] == "FAILED"

    run = work.reconcile("wait", "tiny", "ghost", "--timeout", "5")

    assert run.code == 1, run.out + run.err
    assert run.out == "tiny: AVAILABLE\n"
    assert run.err.startswith("ghost: FAILED -- ")
    assert work.model_status("ghost")["message"].splitlines()[0] in run.err


def test_nothing_fetching_exits_2_at_the_timeout(work: Workdir) -> None:
    run = work.reconcile("wait", "tiny", "--timeout", "0.5")
    assert run.code == 2, run.out + run.err
    assert run.out == ""
    assert (
        run.err
        == f"timed out after 0.5 s; tiny: not reported yet -- no status at {work.status_file} yet\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tiny", "nope"), "unknown model 'nope'; declared models: tiny, ghost\n"),
        (("tiny", "--timeout", "-1"), "--timeout: must be a finite number >= 0, got -1"),
        (("tiny", "--json"), "unrecognized arguments: --json"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    work: Workdir, args: tuple[str, ...], message: str
) -> None:
    run = work.reconcile("wait", *args)
    assert run.code == 1
    assert message in run.err
    assert "Traceback" not in run.err
    assert not work.state.exists()  # nothing changed

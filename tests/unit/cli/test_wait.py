"""``reconcile wait`` over real status files and a real controller API: each poll reads what
a pass wrote; the clock moves only when the command sleeps, and each sleep is when the
"controller" below writes its next status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.api import discovery
from controller.api.app import create_app
from controller.api.client import ModelAvailability
from controller.api.listener import ApiListener
from controller.cli.commands import wait
from controller.domain import DesiredState, Phase
from controller.domain.status import StatusReport
from controller.engine import status_file
from controller.system.exits import ExitCode
from tests.support.standing_controller import StandingController
from tests.support.status_reports import model_status, status_report
from tests.unit.api.manifest import write_manifest

SECRET = "hf_" + "q" * 34


class Passes:
    """Status files written one per sleep, as a controller's passes would; the clock is the
    sum of the sleeps."""

    def __init__(self, desired: DesiredState, *reports: StatusReport) -> None:
        self.desired = desired
        self.pending = list(reports)
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a poll that does not sleep is a busy loop"
        self.now += seconds
        if self.pending:
            status_file.write(self.desired.status_file, self.pending.pop(0))

    def wait(self, *names: str, timeout: float = 60.0) -> int:
        return wait.wait_for(
            self.desired, names, timeout=timeout, monotonic=self.monotonic, sleep=self.sleep
        )


@pytest.fixture
def desired(tmp_path: Path) -> DesiredState:
    return ModelAvailability(write_manifest(tmp_path)).desired


def written(desired: DesiredState, a: Phase, b: Phase, message: str = "") -> StatusReport:
    return status_report(
        model_status("a", a, message), model_status("b", b, message), generation=desired.generation
    )


def test_waits_until_each_is_available_and_says_so_as_each_arrives(
    desired: DesiredState, capsys: pytest.CaptureFixture[str]
) -> None:
    passes = Passes(
        desired,
        written(desired, Phase.DOWNLOADING, Phase.QUEUED),
        written(desired, Phase.AVAILABLE, Phase.DOWNLOADING),
        written(desired, Phase.AVAILABLE, Phase.AVAILABLE),
    )
    assert passes.wait("b", "a") == ExitCode.OK
    assert capsys.readouterr().out.splitlines() == ["a: AVAILABLE", "b: AVAILABLE"]
    assert passes.now == 3 * wait.POLL_SECONDS  # no status yet, then three passes


def test_a_failed_model_ends_the_wait_with_its_message_and_no_token(
    desired: DesiredState, capsys: pytest.CaptureFixture[str]
) -> None:
    passes = Passes(desired, written(desired, Phase.FAILED, Phase.AVAILABLE, f"401 ({SECRET})"))
    assert passes.wait("a", "b") == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "a: FAILED -- 401 (hf_***)" in err
    assert SECRET not in err


def test_at_the_timeout_it_exits_2_naming_what_it_still_waits_for(
    desired: DesiredState, capsys: pytest.CaptureFixture[str]
) -> None:
    passes = Passes(desired, written(desired, Phase.AVAILABLE, Phase.DOWNLOADING, "3 of 7 files"))
    assert passes.wait("a", "b", timeout=5) == ExitCode.CHANGES
    out, err = capsys.readouterr()
    assert out == "a: AVAILABLE\n"
    assert "timed out after 5 s; b: DOWNLOADING -- 3 of 7 files" in err
    assert passes.now == 5


def test_a_status_written_for_other_manifests_says_nothing_about_these(
    desired: DesiredState, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = status_report(
        model_status("a", Phase.AVAILABLE), model_status("b", Phase.AVAILABLE), generation="old"
    )
    status_file.write(desired.status_file, stale)
    assert Passes(desired).wait("a", timeout=2) == ExitCode.CHANGES
    assert "a: not reported yet -- the status is for other manifests" in capsys.readouterr().err


def test_timeout_zero_looks_once(desired: DesiredState) -> None:
    status_file.write(desired.status_file, written(desired, Phase.AVAILABLE, Phase.MISSING))
    passes = Passes(desired)
    assert passes.wait("a", timeout=0) == ExitCode.OK
    assert passes.wait("b", timeout=0) == ExitCode.CHANGES
    assert passes.now == 0


def test_an_unknown_name_is_refused_before_any_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path)
    assert wait.run(str(manifest), ["a", "zz"], timeout=None) == ExitCode.ERROR
    assert capsys.readouterr().err == "unknown model 'zz'; declared models: a, b\n"


@pytest.fixture
def running(desired: DesiredState) -> Iterator[StandingController]:
    """A controller serving the manifests' state directory, published as a real one is."""
    controller = StandingController(desired)
    with ApiListener(create_app(controller, token="t0ken"), "127.0.0.1", 0) as listener:
        info = Path(desired.state_dir) / discovery.INFO_NAME
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(f'{{"pid": 1, "url": "{listener.url}", "started_at": "", "manifests": ""}}')
        yield controller


def test_a_running_controller_answers_without_a_status_file(
    desired: DesiredState,
    running: StandingController,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running.report = written(desired, Phase.AVAILABLE, Phase.FAILED, "gated repo")
    assert not Path(desired.status_file).exists()
    assert Passes(desired).wait("a", timeout=0) == ExitCode.OK
    assert Passes(desired).wait("b", timeout=0) == ExitCode.ERROR
    # The message is for callers with the token.
    assert "b: FAILED -- the controller gives the reason only with MODELSYNC_API_TOKEN set" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv(discovery.TOKEN_ENV, "t0ken")
    assert Passes(desired).wait("b", timeout=0) == ExitCode.ERROR
    assert "b: FAILED -- gated repo" in capsys.readouterr().err


def test_a_controller_that_does_not_answer_leaves_the_status_file_to_say(
    desired: DesiredState, capsys: pytest.CaptureFixture[str]
) -> None:
    info = Path(desired.state_dir) / discovery.INFO_NAME
    info.parent.mkdir(parents=True, exist_ok=True)
    # The discard port: as a pod finds the loopback address a node's controller published.
    info.write_text('{"pid": 1, "url": "http://127.0.0.1:9", "started_at": "", "manifests": ""}')
    status_file.write(desired.status_file, written(desired, Phase.AVAILABLE, Phase.MISSING))
    assert Passes(desired).wait("a", timeout=0) == ExitCode.OK

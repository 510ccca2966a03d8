"""Apply against the in-memory workspace: how a model fails (and says why), what the phase
changes report along the way, and that a model's ref and deletions wait for its success."""

from __future__ import annotations

import errno
from collections.abc import Sequence

import pytest

from controller.domain import Action, ActionKind, FileWork, Phase, Plan, Reason
from controller.domain.status import Failure
from controller.engine.apply import ApplyRun, PhaseChange, apply_plan
from reconcilers.base import FileOutcome
from tests.support.factories import C1, C2, NOW
from tests.support.workspace import FakeWorkspace, work

FILES = {"config.json": b"{}", "model.safetensors": b"weights" * 10}


class FailingDisk(FakeWorkspace):
    """The in-memory workspace whose disk refuses every write and read of one model."""

    def __init__(self, model: str, error: OSError) -> None:
        super().__init__(NOW)
        self.model, self.error = model, error

    def fetch(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        self._fail(action)
        return super().fetch(action, files)

    def verify(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        self._fail(action)
        return super().verify(action, files)

    def delete(self, action: Action) -> tuple[FileOutcome, ...]:
        self._fail(action)
        return super().delete(action)

    def _fail(self, action: Action) -> None:
        if action.model == self.model:
            raise self.error


def action(
    kind: ActionKind, model: str, *, commit: str = C1, files: dict[str, bytes] = FILES
) -> Action:
    return Action(
        kind=kind,
        model=model,
        repo=f"org/{model}",
        revision="main",
        commit=commit,
        files=work(files),
        bytes=sum(map(len, files.values())),
        reason=Reason.MISSING,
        message=f"{kind.value} {model}",
    )


def plan(*actions: Action) -> Plan:
    return Plan(actions=actions, generation="g1", created_at=NOW)


def serve(fake: FakeWorkspace, *models: str, commit: str = C1) -> None:
    for model in models:
        fake.publish(f"org/{model}", commit, FILES)


FULL = OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("kind", "error", "reason", "message"),
    [
        (
            ActionKind.DOWNLOAD,
            FULL,
            Reason.DOWNLOAD_FAILED,
            "download failed: No space left on device",
        ),
        (ActionKind.UPDATE, FULL, Reason.DOWNLOAD_FAILED, "update failed: No space left on device"),
        (ActionKind.REPAIR, FULL, Reason.DOWNLOAD_FAILED, "repair failed: No space left on device"),
        (ActionKind.VERIFY, FULL, Reason.CORRUPTED, "verify failed: No space left on device"),
        (ActionKind.DELETE, FULL, Reason.DELETE_FAILED, "delete failed: No space left on device"),
        (
            ActionKind.DOWNLOAD,
            OSError("read-only cache"),
            Reason.DOWNLOAD_FAILED,
            "download failed: read-only cache",
        ),
    ],
)
def test_a_disk_error_fails_that_model_and_says_why_while_the_others_go_on(
    kind: ActionKind, error: OSError, reason: Reason, message: str
) -> None:
    fake = FailingDisk("a", error)
    serve(fake, "a", "b")
    fake.put("org/a", C1, FILES, owner="a")

    outcome = apply_plan(plan(action(kind, "a"), action(ActionKind.DOWNLOAD, "b")), fake)

    assert outcome.failures == {"a": Failure(reason=reason, message=message, files=())}
    assert not outcome.ok
    assert [(r.action.model, r.ok) for r in outcome.results] == [("a", False), ("b", True)]
    assert fake.refs[("org/b", "main")] == C1 and fake.files("org/b", C1) == FILES


def test_several_failed_files_are_counted_and_named() -> None:
    fake = FakeWorkspace(NOW)
    files = {"a.json": b"a", "b.json": b"b", "c.json": b"c", "d.json": b"d"}
    fake.publish("org/m", C1, files)
    for path in ("b.json", "c.json", "d.json"):
        fake.refuse("org/m", C1, path, Reason.ACCESS_DENIED, "403 Forbidden")

    outcome = apply_plan(plan(action(ActionKind.DOWNLOAD, "m", files=files)), fake)

    assert outcome.failures == {
        "m": Failure(
            reason=Reason.ACCESS_DENIED,
            message="b.json: 403 Forbidden (and 2 more files)",
            files=("b.json", "c.json", "d.json"),
        )
    }
    assert ("org/m", "main") not in fake.refs


def test_the_outcome_is_there_only_once_the_apply_has_run() -> None:
    run = ApplyRun(plan(), FakeWorkspace(NOW))
    with pytest.raises(RuntimeError, match="the apply has not run to its end"):
        _ = run.outcome
    assert list(run.phase_changes()) == []
    assert run.outcome.ok and run.outcome.results == () and run.outcome.stopped == ()


def test_each_phase_change_is_reported_as_it_happens() -> None:
    fake = FakeWorkspace(NOW)
    serve(fake, "down", "fixed", "checked", "held")
    serve(fake, "up", commit=C2)
    fake.put("org/up", C1, FILES, owner="up")
    fake.put("org/checked", C1, FILES, owner="checked")
    fake.refuse("org/fixed", C1, "config.json", Reason.ACCESS_DENIED, "403 Forbidden")
    failed = Failure(
        reason=Reason.ACCESS_DENIED, message="config.json: 403 Forbidden", files=("config.json",)
    )
    run = ApplyRun(
        plan(
            action(ActionKind.DOWNLOAD, "down"),
            action(ActionKind.UPDATE, "up", commit=C2),
            action(ActionKind.REPAIR, "fixed"),
            action(ActionKind.VERIFY, "checked"),
            action(ActionKind.DOWNLOAD, "held"),
        ),
        fake,
        should_stop=lambda model: model == "held",
    )

    changes = list(run.phase_changes())

    assert changes == [
        PhaseChange({"down": Phase.DOWNLOADING}, {}),
        PhaseChange({}, {}),
        PhaseChange({"up": Phase.UPDATING}, {}),
        PhaseChange({}, {}),
        PhaseChange({"fixed": Phase.DOWNLOADING}, {}),
        PhaseChange({}, {"fixed": failed}),
        PhaseChange({}, {"fixed": failed}),  # the verify: no transfer phase, but it ended
    ]
    assert run.outcome.stopped == ("held",)  # asked to stop before it began: no change
    assert ("org/held", "main") not in fake.refs
    assert fake.refs[("org/up", "main")] == C2


def test_a_model_with_nothing_to_transfer_enters_no_transfer_phase() -> None:
    fake = FakeWorkspace(NOW)
    fake.publish("org/m", C1, {})
    run = ApplyRun(plan(action(ActionKind.DOWNLOAD, "m", files={})), fake)
    assert list(run.phase_changes()) == [PhaseChange({}, {})]


@pytest.mark.parametrize("parallel", [0, 1, 3])
def test_results_follow_the_plan_whatever_runs_beside_them(parallel: int) -> None:
    fake = FakeWorkspace(NOW)
    models = ["m1", "m2", "m3", "m4"]
    serve(fake, *models)
    run = ApplyRun(plan(*(action(ActionKind.DOWNLOAD, m) for m in models)), fake, parallel=parallel)

    changes = list(run.phase_changes())

    assert [r.action.model for r in run.outcome.results] == models
    assert all(fake.files(f"org/{m}", C1) == FILES for m in models)
    assert changes[-1] == PhaseChange({}, {}) and len(changes) == 2 * len(models)


@pytest.mark.parametrize("fetched", [True, False])
def test_deletions_wait_for_the_models_other_work(fetched: bool) -> None:
    fake = FakeWorkspace(NOW)
    fake.publish("org/m", C2, FILES)
    fake.put("org/m", C1, FILES, owner="m")
    if not fetched:
        fake.refuse("org/m", C2, "config.json", Reason.ACCESS_DENIED, "403 Forbidden")
    old = action(ActionKind.DELETE, "m", commit=C1)

    outcome = apply_plan(plan(old, action(ActionKind.UPDATE, "m", commit=C2)), fake)

    kinds = [r.action.kind for r in outcome.results]
    if fetched:
        assert kinds == [ActionKind.UPDATE, ActionKind.DELETE] and outcome.ok
        assert fake.refs[("org/m", "main")] == C2 and fake.files("org/m", C1) == {}
    else:
        assert kinds == [ActionKind.UPDATE] and not outcome.ok
        assert fake.refs[("org/m", "main")] == C1 and fake.files("org/m", C1) == FILES


class Broken(FakeWorkspace):
    """A workspace with a bug: fetching raises something no reconciler expects."""

    def fetch(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        raise RuntimeError(f"bug while fetching {action.model}")


def test_an_unexpected_error_in_a_model_reaches_the_caller() -> None:
    fake = Broken(NOW)
    serve(fake, "m")
    with pytest.raises(RuntimeError, match="bug while fetching m"):
        apply_plan(plan(action(ActionKind.DOWNLOAD, "m")), fake)


def test_a_model_stopped_first_lets_the_others_run_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeWorkspace(NOW)
    serve(fake, "held", "m")
    caplog.set_level("INFO", logger="modelsync.apply")

    outcome = apply_plan(
        plan(action(ActionKind.DOWNLOAD, "held"), action(ActionKind.DOWNLOAD, "m")),
        fake,
        should_stop=lambda model: model == "held",
    )

    assert outcome.stopped == ("held",) and outcome.ok
    assert fake.files("org/m", C1) == FILES and ("org/held", "main") not in fake.refs
    assert [r.getMessage() for r in caplog.records] == ["download m: download m"]


def test_a_stop_after_a_failure_is_a_stop_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeWorkspace(NOW)
    serve(fake, "m")
    fake.put("org/m", C1, FILES, owner="m", ref=None)
    fake.refuse("org/m", C1, "config.json", Reason.ACCESS_DENIED, "403 Forbidden")
    fake.stop_after = 1
    caplog.set_level("INFO", logger="modelsync.apply")
    fetch = action(ActionKind.DOWNLOAD, "m", files={"config.json": FILES["config.json"]})

    outcome = apply_plan(plan(fetch, action(ActionKind.VERIFY, "m")), fake)

    assert outcome.failures == {} and outcome.stopped == ("m",)
    assert [r.getMessage() for r in caplog.records][-1] == (
        "m: stopped at a safe point; partial files are kept"
    )


def test_two_failed_files_count_one_more_and_a_disk_error_names_no_file() -> None:
    fake = FailingDisk("full", FULL)
    files = {"a.json": b"a", "b.json": b"b"}
    fake.publish("org/m", C1, files)
    serve(fake, "full")
    for path in files:
        fake.refuse("org/m", C1, path, Reason.ACCESS_DENIED, "403 Forbidden")

    outcome = apply_plan(
        plan(action(ActionKind.DOWNLOAD, "m", files=files), action(ActionKind.DOWNLOAD, "full")),
        fake,
    )

    assert outcome.failures["m"].message == "a.json: 403 Forbidden (and 1 more files)"
    (disk,) = [r for r in outcome.results if r.action.model == "full"]
    assert disk.outcomes == (
        FileOutcome(
            path="",
            ok=False,
            reason=Reason.DOWNLOAD_FAILED,
            detail="download failed: No space left on device",
        ),
    )

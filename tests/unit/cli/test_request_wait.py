"""``reconcile request --wait`` without --timeout: it gives up after the default, not never."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.commands import request
from controller.cli.commands.request import DEFAULT_WAIT_SECONDS, request_until
from controller.domain import DesiredModel, Phase, Policy
from tests.support.factories import desired


class _FakeTime:
    """A clock that only ``sleep`` moves, so an hour's wait takes no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        # Far past the default: a wait with no limit would poll on for ever.
        assert self.now < 2 * DEFAULT_WAIT_SECONDS, "request --wait never gave up"


def test_a_wait_without_timeout_gives_up_after_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(request, "POLL_SECONDS", 60.0)  # an hour in 60 polls, not 7200
    model = DesiredModel(name="tiny", repo="org/tiny", policy=Policy.ON_DEMAND)
    time = _FakeTime()

    result, timed_out = request_until(
        desired(model, root=tmp_path, endpoint="http://127.0.0.1:9"),
        "tiny",
        wait=True,
        timeout=None,
        monotonic=time.monotonic,
        sleep=time.sleep,
    )

    assert timed_out
    assert result.phase is Phase.QUEUED  # nothing fetched it: still waiting for an apply
    assert time.now == DEFAULT_WAIT_SECONDS

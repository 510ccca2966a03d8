"""What ``/healthz`` says of the upstream, from what the mirror's traffic saw."""

from __future__ import annotations

from controller.mirror.health import UpstreamHealth, UpstreamState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_latest_call_decides_whether_the_upstream_is_reachable() -> None:
    assert UpstreamState().reachable is None
    assert UpstreamState(answered_at=1.0).reachable is True
    assert UpstreamState(unreachable_at=1.0).reachable is False
    assert UpstreamState(answered_at=1.0, unreachable_at=2.0).reachable is False
    assert UpstreamState(answered_at=3.0, unreachable_at=2.0).reachable is True


def test_the_report_gives_ages_and_the_last_error() -> None:
    clock = Clock()
    health = UpstreamHealth("http://hub", clock)
    health.answered()
    clock.now += 5
    health.unreachable("cannot reach http://hub: ConnectError")
    clock.now += 2.5
    upstream = health.report()["upstream"]
    assert upstream == {
        "url": "http://hub",
        "reachable": False,
        "last_answer_seconds_ago": 7.5,
        "last_error_seconds_ago": 2.5,
        "last_error": "cannot reach http://hub: ConnectError",
    }


def test_a_failed_fill_is_an_error_of_an_upstream_that_answers() -> None:
    clock = Clock()
    health = UpstreamHealth("http://hub", clock)
    health.answered()
    health.failed("the upstream hub sent bytes that fail their sha256")
    report = health.report()["upstream"]
    assert isinstance(report, dict)
    assert report["reachable"] is True
    assert report["last_error"] == "the upstream hub sent bytes that fail their sha256"

"""Transfer progress: throughput over a window, ETA, listeners' pace, bars."""

from __future__ import annotations

from controller.domain.progress import describe, duration
from controller.engine.progress import ModelProgress, ProgressTracker, RateMeter, eta

MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_measured_over_the_recent_window_only() -> None:
    meter = RateMeter(window=10)
    assert meter.rate(0) is None
    for t in range(0, 30):
        meter.add(t, 1 * MB if t < 20 else 4 * MB)  # the link gets 4x faster at t=20
    assert meter.rate(29) is not None
    rate = meter.rate(29)
    assert rate is not None and 3.5 * MB < rate <= 4 * MB


def test_eta_is_remaining_over_rate() -> None:
    assert eta(100 * MB, 10 * MB) == 10
    assert eta(0, None) == 0
    assert eta(5, None) is None


def test_a_resumed_partial_is_progress_but_not_throughput() -> None:
    clock = Clock()
    tracker = ProgressTracker(monotonic=clock)
    tracker.expect("m", [("a.bin", 100 * MB), ("b.json", 1 * MB)])
    tracker.update("m", "a.bin", 60 * MB, 100 * MB)  # 60 MB were on disk from an earlier run
    for _ in range(10):
        clock.now += 1
        tracker.update("m", "a.bin", tracker.snapshot()["m"].bytes_done + 2 * MB, 100 * MB)
    p = tracker.snapshot()["m"]
    assert (p.bytes_done, p.bytes_total, p.files_done, p.files_total) == (80 * MB, 101 * MB, 0, 2)
    assert p.bytes_per_second == 2 * MB
    assert p.eta_seconds == 10.5  # 21 MB left at 2 MB/s
    assert [(f.path, f.bytes_done) for f in p.files] == [("a.bin", 80 * MB)]
    assert tracker.received() == {"m": 20 * MB}


def test_listeners_hear_at_their_own_pace_and_when_a_model_completes() -> None:
    clock = Clock()
    tracker = ProgressTracker(monotonic=clock)
    fast: list[int] = []
    slow: list[int] = []
    tracker.listen(lambda s: fast.append(s["m"].bytes_done), every=1)
    tracker.listen(lambda s: slow.append(s["m"].bytes_done), every=5)
    tracker.expect("m", [("f", 10)])
    for done in range(1, 10):
        clock.now += 0.5
        tracker.update("m", "f", done, 10)
    clock.now += 0.1
    tracker.update("m", "f", 10, 10)  # the last byte: everyone hears, whatever the pace
    assert fast == [1, 3, 5, 7, 9, 10]
    assert slow == [1, 10]


def test_a_completion_between_intervals_is_told_of_that_model_alone() -> None:
    clock = Clock()
    tracker = ProgressTracker(monotonic=clock)
    heard: list[set[str]] = []
    tracker.listen(lambda s: heard.append(set(s)), every=10)
    for model in ("a", "b", "c"):
        tracker.expect(model, [("f", 2)])
    tracker.update("a", "f", 1, 2)  # the first report is due: every model tracked
    clock.now += 1
    tracker.update("b", "f", 2, 2)
    tracker.update("c", "f", 1, 2)  # neither due nor complete: nothing told
    clock.now += 10
    tracker.update("c", "f", 2, 2)  # due again: every model
    assert heard == [{"a", "b", "c"}, {"b"}, {"a", "b", "c"}]


def test_retain_forgets_models_no_longer_transferring() -> None:
    tracker = ProgressTracker()
    tracker.update("a", "f", 1, 2)
    tracker.update("b", "f", 1, 2)
    tracker.retain(["b"])
    assert set(tracker.snapshot()) == {"b"}


def _progress(done: int, total: int, rate: float | None = None) -> ModelProgress:
    return ModelProgress(
        bytes_done=done,
        bytes_total=total,
        files_done=0,
        files_total=3,
        bytes_per_second=rate,
        eta_seconds=None if not rate else (total - done) / rate,
    )


def test_progress_reads_as_text() -> None:
    assert duration(5) == "5s" and duration(72) == "1m12s" and duration(3700) == "1h01m"
    assert describe(_progress(52, 100, 1.0)) == "52% of 100 B (0/3 files), 1 B/s, 48s left"

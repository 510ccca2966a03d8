"""Transfer progress: throughput over a window, ETA, listeners' pace, metrics and bars."""

from __future__ import annotations

import io
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families

from controller.api.metrics import Metrics, render
from controller.cli.terminal import ProgressDisplay, describe
from controller.domain import Disk
from controller.domain.progress import duration
from controller.engine.progress import ModelProgress, ProgressTracker, RateMeter, eta
from controller.planning.status import ModelStatus, StatusReport, StatusSummary

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


def test_a_terminal_gets_bars_and_a_log_gets_a_line_every_few_seconds() -> None:
    assert duration(5) == "5s" and duration(72) == "1m12s" and duration(3700) == "1h01m"
    assert describe(_progress(52, 100, 1.0)) == "52% of 100 B (0/3 files), 1 B/s, 48s left"
    tty = io.StringIO()
    ProgressDisplay(tty, tty=True)({"m": _progress(5 * MB, 10 * MB, MB)})
    assert "m [############............] 50% of 10.0 MB" in tty.getvalue()
    clock = Clock()
    plain = io.StringIO()
    display = ProgressDisplay(plain, tty=False, monotonic=clock)
    for second in range(12):
        clock.now = second
        display({"m": _progress(second, 100)})
    display({"m": _progress(100, 100)})
    assert plain.getvalue().splitlines() == [
        "m: 0% of 100 B (0/3 files)",
        "m: 10% of 100 B (0/3 files)",
        "m: fetched 100 B (3 files)",
    ]
    assert "\x1b" not in plain.getvalue()


def _report() -> StatusReport:
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    model = ModelStatus(
        name='we"ird',
        repo="org/m",
        revision="main",
        commit="c" * 40,
        phase="AVAILABLE",
        reason="Verified",
        message="",
        size_on_disk=12_345_678_901,
        expected_size=12_345_678_901,
        integrity_score=1.0,
        priority="auto",
        policy="always",
        last_checked=now,
    )
    summary = StatusSummary(
        models=1, phases={"AVAILABLE": 1}, size_on_disk=12_345_678_901, expected_size=1, ready=True
    )
    return StatusReport(observedGeneration="g", updatedAt=now, summary=summary, models=(model,))


def test_metrics_text_parses_as_prometheus_exposition() -> None:
    metrics = Metrics()
    metrics.record_pass(0.3, ok=True)
    metrics.record_pass(42.0, ok=False)
    metrics.count_verify_failures('we"ird', 2)
    text = render(
        metrics.sample(
            report=_report(),
            downloaded={'we"ird': 5 * MB},
            disk=Disk(total=1000 * MB, free=400 * MB),
            budget_bytes=800 * MB,
            ready=True,
        )
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("modelsync_model_phase", (("model", 'we"ird'), ("phase", "AVAILABLE")))] == 1
    assert samples[("modelsync_model_phase", (("model", 'we"ird'), ("phase", "FAILED")))] == 0
    assert samples[("modelsync_downloaded_bytes_total", (("model", 'we"ird'),))] == 5 * MB
    assert samples[("modelsync_verify_failures_total", (("model", 'we"ird'),))] == 2
    assert samples[("modelsync_reconciles_total", ())] == 2
    assert samples[("modelsync_reconcile_errors_total", ())] == 1
    assert samples[("modelsync_reconcile_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("modelsync_reconcile_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("modelsync_reconcile_duration_seconds_sum", ())] == 42.3
    assert samples[("modelsync_disk_used_bytes", ())] == 12_345_678_901
    assert samples[("modelsync_disk_budget_bytes", ())] == 800 * MB
    assert families["modelsync_reconcile_duration_seconds"].type == "histogram"

"""``/metrics``: the controller's families and the process's, as Prometheus parses them."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.api.metrics import Metrics, Sample, exposition, registry
from controller.domain import Disk
from controller.domain.status import ModelStatus, StatusReport, StatusSummary

MB = 1_000_000


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


def _sample() -> Sample:
    metrics = Metrics()
    metrics.record_pass(0.3, ok=True)
    metrics.record_pass(42.0, ok=False)
    metrics.count_verify_failures('we"ird', 2)
    return metrics.sample(
        report=_report(),
        downloaded={'we"ird': 5 * MB},
        disk=Disk(total=1000 * MB, free=400 * MB),
        budget_bytes=800 * MB,
        ready=True,
    )


def test_the_families_keep_their_names_types_and_labels() -> None:
    text = generate_latest(registry(_sample)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("modelsync_model_phase", (("model", 'we"ird'), ("phase", "AVAILABLE")))] == 1
    assert samples[("modelsync_model_phase", (("model", 'we"ird'), ("phase", "FAILED")))] == 0
    assert samples[("modelsync_model_size_bytes", (("model", 'we"ird'),))] == 12_345_678_901
    assert samples[("modelsync_model_update_available", (("model", 'we"ird'),))] == 0
    assert samples[("modelsync_ready", ())] == 1
    assert samples[("modelsync_downloaded_bytes_total", (("model", 'we"ird'),))] == 5 * MB
    assert samples[("modelsync_verify_failures_total", (("model", 'we"ird'),))] == 2
    assert samples[("modelsync_reconciles_total", ())] == 2
    assert samples[("modelsync_reconcile_errors_total", ())] == 1
    assert samples[("modelsync_reconcile_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert samples[("modelsync_reconcile_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("modelsync_reconcile_duration_seconds_sum", ())] == 42.3
    assert samples[("modelsync_reconcile_duration_seconds_count", ())] == 2
    assert samples[("modelsync_disk_used_bytes", ())] == 12_345_678_901
    assert samples[("modelsync_disk_budget_bytes", ())] == 800 * MB
    assert samples[("modelsync_filesystem_free_bytes", ())] == 400 * MB
    types = {name: families[name].type for name in families if name.startswith("modelsync_")}
    assert types["modelsync_reconcile_duration_seconds"] == "histogram"
    assert types["modelsync_reconciles"] == types["modelsync_downloaded_bytes"] == "counter"
    assert types["modelsync_model_phase"] == types["modelsync_disk_used_bytes"] == "gauge"
    # Counts as they were: no *_created series beside the counters.
    assert not any(name.endswith("_created") for name, _ in samples)


def test_the_process_collector_reports_this_process() -> None:
    text = generate_latest(registry(_sample)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (rss,) = families["process_resident_memory_bytes"].samples
    proc = Path(f"/proc/{os.getpid()}/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in proc)
    vm_rss = int(status["VmRSS"].split()[0]) * 1024
    assert 0.5 * vm_rss < rss.value < 2 * vm_rss
    assert families["process_cpu_seconds"].samples[0].value > 0


def test_the_status_is_read_at_each_scrape_and_absent_numbers_are_left_out() -> None:
    current: list[Sample] = []
    scraped = registry(lambda: current[-1])
    current.append(
        Metrics().sample(report=None, downloaded={}, disk=None, budget_bytes=None, ready=False)
    )
    before = generate_latest(scraped).decode()
    current.append(_sample())
    after = generate_latest(scraped).decode()
    assert "modelsync_disk_budget_bytes" not in before and "modelsync_filesystem" not in before
    assert "modelsync_ready 0.0" in before and "modelsync_ready 1.0" in after
    assert 'modelsync_model_phase{model="we\\"ird",phase="AVAILABLE"} 1.0' in after


def test_the_format_follows_the_scrapers_accept_header() -> None:
    scraped = registry(_sample)
    text, plain = exposition(scraped, None)
    assert plain == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE modelsync_reconciles_total counter" in text
    text, open_metrics = exposition(scraped, "application/openmetrics-text; version=1.0.0")
    assert open_metrics.startswith("application/openmetrics-text")
    assert text.endswith(b"# EOF\n")


def test_counters_are_0_for_every_model_before_their_first_increase() -> None:
    fresh = Metrics().sample(
        report=_report(), downloaded={}, disk=None, budget_bytes=None, ready=True
    )
    text = generate_latest(registry(lambda: fresh)).decode()
    assert 'modelsync_downloaded_bytes_total{model="we\\"ird"} 0.0' in text
    assert 'modelsync_verify_failures_total{model="we\\"ird"} 0.0' in text

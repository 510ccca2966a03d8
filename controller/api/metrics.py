"""``GET /metrics``: the controller's numbers in the Prometheus text format (version 0.0.4).

:class:`Metrics` counts what happens (passes, their duration, verification failures) and
:func:`render` turns a :class:`Sample` of it, with the latest status, into text.  Written by
hand: the format is a few lines of text, and the controller needs no client library for it.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.domain import Disk, Phase
from controller.domain.status import StatusReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: a pass with nothing to do takes well under a second; one that downloads a
# 60 GB model takes hours.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0)


@dataclass(frozen=True)
class Sample:
    report: StatusReport | None
    downloaded_bytes: Mapping[str, int]  # by model, since the controller started
    verify_failures: Mapping[str, int]  # files found damaged, by model
    passes: int
    pass_errors: int  # passes that raised, or ended with failures or plan errors
    duration_buckets: tuple[int, ...]  # cumulative counts for DURATION_BUCKETS
    duration_sum: float
    disk: Disk | None
    budget_bytes: int | None
    ready: bool


@dataclass
class Metrics:
    """What the loop counts; thread-safe (the HTTP server reads while the loop writes)."""

    verify_failures: dict[str, int] = field(default_factory=dict)
    passes: int = 0
    pass_errors: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record_pass(self, seconds: float, *, ok: bool) -> None:
        with self._lock:
            self.passes += 1
            self.pass_errors += 0 if ok else 1
            self.duration_sum += seconds
            first = bisect.bisect_left(DURATION_BUCKETS, seconds)
            for i in range(first, len(DURATION_BUCKETS)):
                self.durations[i] += 1

    def count_verify_failures(self, model: str, files: int) -> None:
        if files:
            with self._lock:
                self.verify_failures[model] = self.verify_failures.get(model, 0) + files

    def sample(
        self,
        *,
        report: StatusReport | None,
        downloaded: Mapping[str, int],
        disk: Disk | None,
        budget_bytes: int | None,
        ready: bool,
    ) -> Sample:
        with self._lock:
            return Sample(
                report=report,
                downloaded_bytes=dict(downloaded),
                verify_failures=dict(self.verify_failures),
                passes=self.passes,
                pass_errors=self.pass_errors,
                duration_buckets=tuple(self.durations),
                duration_sum=self.duration_sum,
                disk=disk,
                budget_bytes=budget_bytes,
                ready=ready,
            )


def render(s: Sample) -> str:
    out: list[str] = []
    models = s.report.models if s.report is not None else ()

    def family(name: str, kind: str, text: str) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    def line(name: str, value: float, **labels: str) -> None:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{inner}}} {_number(value)}" if labels else f"{name} {_number(value)}")

    family("modelsync_model_phase", "gauge", "1 for the phase each model is in, 0 for the others.")
    for m in models:
        for phase in Phase:
            line("modelsync_model_phase", int(m.phase is phase), model=m.name, phase=phase.value)
    family("modelsync_model_size_bytes", "gauge", "Bytes of each model's selected files on disk.")
    for m in models:
        line("modelsync_model_size_bytes", m.size_on_disk, model=m.name)
    family("modelsync_model_expected_bytes", "gauge", "Bytes each model's selected files take.")
    for m in models:
        line("modelsync_model_expected_bytes", m.expected_size, model=m.name)
    family("modelsync_model_update_available", "gauge", "1 when the revision moved upstream.")
    for m in models:
        line("modelsync_model_update_available", int(m.update_available), model=m.name)
    family("modelsync_ready", "gauge", "1 when every `always` model is AVAILABLE.")
    line("modelsync_ready", int(s.ready))

    family("modelsync_downloaded_bytes_total", "counter", "Bytes downloaded since start.")
    for model, count in sorted(s.downloaded_bytes.items()):
        line("modelsync_downloaded_bytes_total", count, model=model)
    family("modelsync_verify_failures_total", "counter", "Files found damaged since start.")
    for model, count in sorted(s.verify_failures.items()):
        line("modelsync_verify_failures_total", count, model=model)

    family("modelsync_reconciles_total", "counter", "Reconcile passes since start.")
    line("modelsync_reconciles_total", s.passes)
    family(
        "modelsync_reconcile_errors_total",
        "counter",
        "Passes that raised, or ended with failed models or plan errors.",
    )
    line("modelsync_reconcile_errors_total", s.pass_errors)
    family("modelsync_reconcile_duration_seconds", "histogram", "How long each pass took.")
    for bound, count in zip(DURATION_BUCKETS, s.duration_buckets, strict=True):
        line("modelsync_reconcile_duration_seconds_bucket", count, le=_number(bound))
    line("modelsync_reconcile_duration_seconds_bucket", s.passes, le="+Inf")
    line("modelsync_reconcile_duration_seconds_sum", s.duration_sum)
    line("modelsync_reconcile_duration_seconds_count", s.passes)

    used = s.report.summary.size_on_disk if s.report is not None else 0
    family("modelsync_disk_used_bytes", "gauge", "Bytes the declared models take on disk.")
    line("modelsync_disk_used_bytes", used)
    if s.budget_bytes is not None:
        family(
            "modelsync_disk_budget_bytes",
            "gauge",
            "retention.max_storage_usage_percent of the cache's filesystem.",
        )
        line("modelsync_disk_budget_bytes", s.budget_bytes)
    if s.disk is not None:
        family("modelsync_filesystem_size_bytes", "gauge", "Size of the cache's filesystem.")
        line("modelsync_filesystem_size_bytes", s.disk.total)
        family("modelsync_filesystem_free_bytes", "gauge", "Free bytes on the cache's filesystem.")
        line("modelsync_filesystem_free_bytes", s.disk.free)
    return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # Integers exactly (byte counts exceed a float's %g precision); floats round-trip.
    return str(value) if isinstance(value, int) else repr(value)

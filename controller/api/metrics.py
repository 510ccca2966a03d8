"""``GET /metrics``: the controller's numbers for Prometheus, through ``prometheus_client``.

:class:`Metrics` counts what happens (passes, their duration, verification failures); each
scrape takes a :class:`Sample` of it with the latest status, and :class:`SampleCollector` turns
that into metric families.  :func:`registry` puts it beside the process collector
(``process_resident_memory_bytes``, ``process_cpu_seconds_total``, open files...) in a
registry of the controller's own, and :func:`exposition` writes the registry in the format the
scraper asks for (Prometheus text 0.0.4 by default, OpenMetrics when accepted).

The counts stay plain integers under a lock rather than ``prometheus_client.Counter`` objects:
those also publish ``*_created`` series, which the controller never published, and the
numbers are read at scrape time anyway, like the phases from the latest status.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from controller import __version__
from controller.domain import Disk, Phase
from controller.domain.status import StatusReport
from controller.hub import watchdog

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
    # Transfers the low-speed watchdog cut, by what was transferred (every kind, 0 or more).
    stalls: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Metrics:
    """What the loop counts; thread-safe (the HTTP API reads while the loop writes)."""

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
                stalls={kind.value: n for kind, n in watchdog.cuts_by_kind().items()},
            )


class SampleCollector(Collector):
    """The controller's metric families, from a fresh :class:`Sample` at every scrape.

    Per-model families carry ``model`` (and ``phase``); which node a series comes from is
    the scrape target's label (``instance``, or ``node`` relabelled from the pod's node in
    Kubernetes), as Prometheus attaches it to every series.  ``modelsync_controller_info``
    names the node too, for set-ups that scrape by address: joining on it gives alerts and
    dashboards the node's name.
    """

    def __init__(self, sample: Callable[[], Sample], *, node: str = "") -> None:
        self._sample = sample
        self._node = node

    def describe(self) -> Iterable[Metric]:
        # Nothing to check for clashes at registration: the families depend on the status.
        return ()

    def collect(self) -> Iterator[Metric]:
        s = self._sample()
        models = s.report.models if s.report is not None else ()
        info = GaugeMetricFamily(
            "modelsync_controller_info",
            "Always 1: the controller's node and version.",
            labels=["node", "version"],
        )
        info.add_metric([self._node, __version__], 1)
        yield info

        phase = GaugeMetricFamily(
            "modelsync_model_phase",
            "1 for the phase each model is in, 0 for the others.",
            labels=["model", "phase"],
        )
        size = GaugeMetricFamily(
            "modelsync_model_size_bytes",
            "Bytes of each model's selected files on disk.",
            labels=["model"],
        )
        expected = GaugeMetricFamily(
            "modelsync_model_expected_bytes",
            "Bytes each model's selected files take.",
            labels=["model"],
        )
        update = GaugeMetricFamily(
            "modelsync_model_update_available",
            "1 when the revision moved upstream.",
            labels=["model"],
        )
        for m in models:
            for p in Phase:
                phase.add_metric([m.name, p.value], int(m.phase is p))
            size.add_metric([m.name], m.size_on_disk)
            expected.add_metric([m.name], m.expected_size)
            update.add_metric([m.name], int(m.update_available))
        yield from (phase, size, expected, update)
        yield GaugeMetricFamily(
            "modelsync_ready", "1 when every `always` model is AVAILABLE.", value=int(s.ready)
        )

        names = [m.name for m in models]
        yield _by_model(
            "modelsync_downloaded_bytes_total",
            "Bytes downloaded since start.",
            s.downloaded_bytes,
            names,
        )
        yield _by_model(
            "modelsync_verify_failures_total",
            "Files found damaged since start.",
            s.verify_failures,
            names,
        )
        stalls = CounterMetricFamily(
            "modelsync_transfer_stalls_total",
            "Transfers cut for staying below the speed floor (a file's body, or the hub's "
            "answer about a revision) since start.",
            labels=["kind"],
        )
        for kind in sorted(s.stalls):
            stalls.add_metric([kind], s.stalls[kind])
        yield stalls
        yield CounterMetricFamily(
            "modelsync_reconciles_total", "Reconcile passes since start.", value=s.passes
        )
        yield CounterMetricFamily(
            "modelsync_reconcile_errors_total",
            "Passes that raised, or ended with failed models or plan errors.",
            value=s.pass_errors,
        )
        buckets = [
            (repr(bound), count)
            for bound, count in zip(DURATION_BUCKETS, s.duration_buckets, strict=True)
        ]
        yield HistogramMetricFamily(
            "modelsync_reconcile_duration_seconds",
            "How long each pass took.",
            buckets=[*buckets, ("+Inf", s.passes)],
            sum_value=s.duration_sum,
        )

        used = s.report.summary.size_on_disk if s.report is not None else 0
        yield GaugeMetricFamily(
            "modelsync_disk_used_bytes", "Bytes the declared models take on disk.", value=used
        )
        if s.budget_bytes is not None:
            yield GaugeMetricFamily(
                "modelsync_disk_budget_bytes",
                "retention.max_storage_usage_percent of the cache's filesystem.",
                value=s.budget_bytes,
            )
        if s.disk is not None:
            yield GaugeMetricFamily(
                "modelsync_filesystem_size_bytes",
                "Size of the cache's filesystem.",
                value=s.disk.total,
            )
            yield GaugeMetricFamily(
                "modelsync_filesystem_free_bytes",
                "Free bytes on the cache's filesystem.",
                value=s.disk.free,
            )


def registry(sample: Callable[[], Sample], *, node: str = "") -> CollectorRegistry:
    """A registry of the controller's own: its families and the process's (memory, CPU);
    ``node`` is the name ``modelsync_controller_info`` gives the controller's node."""
    own = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=own)
    own.register(SampleCollector(sample, node=node))
    return own


def exposition(source: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry's text in the format ``accept`` asks for, and its content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(source), content_type


def _by_model(
    name: str, documentation: str, counts: Mapping[str, int], models: Iterable[str]
) -> CounterMetricFamily:
    """One series per model the status names, 0 until its first increase: an alert on
    ``increase(...)`` over a series that does not exist yet sees "no data", not 0."""
    family = CounterMetricFamily(name, documentation, labels=["model"])
    for model in sorted({*models, *counts}):
        family.add_metric([model], counts.get(model, 0))
    return family

"""``GET /metrics`` of a pull-through mirror, through ``prometheus_client``.

Plain integers under a lock, turned into metric families at scrape time (as the
controller's own metrics are), beside the process collector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass
class MirrorMetrics:
    """What the mirror counts; thread-safe, every request thread adds to it."""

    served_from_cache: int = 0  # body bytes sent from blobs the directory held
    served_from_fill: int = 0  # body bytes sent from a fill while it came from upstream
    fetched: int = 0  # body bytes received from upstream
    fills: int = 0  # upstream downloads started
    coalesced: int = 0  # requests that joined a fill already under way
    upstream_errors: int = 0  # failed upstream calls, fills and bodies that failed their hash
    evictions: int = 0
    evicted_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def adder(self, name: str) -> Callable[[int], None]:
        return lambda amount: self.add(name, amount)


class MirrorCollector(Collector):
    def __init__(
        self, metrics: MirrorMetrics, usage: Callable[[], int], budget: int | None
    ) -> None:
        self.metrics = metrics
        self.usage = usage
        self.budget = budget

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        served = CounterMetricFamily(
            "modelsync_mirror_served_bytes",
            "File bytes sent to clients, by where they came from",
            labels=["source"],
        )
        served.add_metric(["cache"], m.served_from_cache)
        served.add_metric(["upstream"], m.served_from_fill)
        yield served
        for name, text, value in (
            ("upstream_bytes", "File bytes received from the upstream hub", m.fetched),
            ("fills", "Downloads from the upstream hub started", m.fills),
            (
                "coalesced_requests",
                "Requests served from a download already under way",
                m.coalesced,
            ),
            ("upstream_errors", "Upstream requests or downloads that failed", m.upstream_errors),
            ("evictions", "Blobs deleted to keep within the byte budget", m.evictions),
            ("evicted_bytes", "Bytes deleted to keep within the byte budget", m.evicted_bytes),
        ):
            yield CounterMetricFamily(f"modelsync_mirror_{name}", text, value=value)
        yield GaugeMetricFamily(
            "modelsync_mirror_cache_bytes", "Bytes the mirror's directory holds", value=self.usage()
        )
        if self.budget is not None:
            yield GaugeMetricFamily(
                "modelsync_mirror_budget_bytes", "The directory's byte budget", value=self.budget
            )


def registry(collector: MirrorCollector) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=True)
    found.register(collector)
    ProcessCollector(registry=found)
    return found


def exposition(found: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The registry in the format the scraper accepts: (body, content type)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(found), content_type

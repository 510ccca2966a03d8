"""Transfer progress as values: bytes, files, throughput and time left, and their text.

The tracker that folds a download's callbacks into these lives in ``controller.engine.progress``;
the status file, the event stream and a terminal all show the same :class:`ModelProgress`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from controller.domain.units import human_bytes

# Throughput is measured over the last few seconds: long enough to smooth TCP's bursts,
# short enough that an ETA reacts when a mirror slows down.
RATE_WINDOW_SECONDS = 10.0


class FileProgress(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)
    path: str
    bytes_done: int
    bytes_total: int


class ModelProgress(BaseModel):
    """A model's transfer under way, as the status and the event stream show it."""

    model_config = ConfigDict(frozen=True, defer_build=True)
    bytes_done: int = Field(description="bytes of the files to fetch already on disk")
    bytes_total: int = Field(description="size of the files to fetch")
    files_done: int
    files_total: int
    bytes_per_second: float | None = Field(
        default=None, description=f"over the last {RATE_WINDOW_SECONDS:g} s; None: not measured yet"
    )
    eta_seconds: float | None = Field(default=None, description="time left at that rate")
    files: tuple[FileProgress, ...] = Field(default=(), description="files being fetched now")

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


class RateMeter:
    """Bytes per second over a sliding window of samples; time is passed in."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()  # (time, cumulative bytes)
        self._total = 0

    def add(self, now: float, count: int) -> None:
        self._total += count
        if self._samples and now - self._samples[-1][0] < 0.1:
            # Merge samples closer than 0.1 s: the window holds at most ~100 of them.
            self._samples[-1] = (self._samples[-1][0], self._total)
        else:
            self._samples.append((now, self._total))
        while len(self._samples) > 2 and now - self._samples[1][0] > self.window:
            self._samples.popleft()

    def rate(self, now: float) -> float | None:
        if not self._samples:
            return None
        first_time, first_total = self._samples[0]
        if len(self._samples) == 1:
            # One sample holds bytes that arrived before it was taken: no interval to divide.
            return None
        span = max(now, self._samples[-1][0]) - first_time
        if span <= 0:
            return None
        return (self._total - first_total) / span


def eta(remaining: int, rate: float | None) -> float | None:
    if remaining <= 0:
        return 0.0
    if not rate:
        return None
    return remaining / rate




def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def describe(p: ModelProgress) -> str:
    """'52% of 12.7 GB (3/27 files), 85.0 MB/s, 1m12s left'"""
    parts = [f"{100 * p.fraction:.0f}% of {human_bytes(p.bytes_total)}"]
    parts[0] += f" ({p.files_done}/{p.files_total} files)"
    if p.bytes_per_second:
        parts.append(f"{human_bytes(int(p.bytes_per_second))}/s")
    if p.eta_seconds is not None and p.fraction < 1:
        parts.append(f"{duration(p.eta_seconds)} left")
    return ", ".join(parts)


Snapshot = Mapping[str, "ModelProgress"]

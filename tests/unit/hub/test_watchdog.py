"""The low-speed watchdog: a trickling body is cut and resumed from the bytes on disk; a slow
but steady one is left alone.  Against the local hub over real HTTP, with small windows so the
tests are quick; the defaults are checked on a clock the test moves."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import pytest

from controller.hub import watchdog
from controller.hub.revisions import HubError
from controller.hub.transfer import FileRef, RetryPolicy, fetch
from controller.hub.watchdog import DEFAULT_FLOOR, SpeedFloor, Watchdog
from tests.support.hub import LocalHub

REPO = "org/slow"
MIB = 1024 * 1024
WEIGHTS = random.Random(11).randbytes(2 * MIB + 777)
SMALL = random.Random(12).randbytes(150_000)
FAST = RetryPolicy(attempts=4, base=0.05, cap=0.2)


def ref(commit: str, path: str, data: bytes) -> FileRef:
    return FileRef(REPO, path, commit, etag=hashlib.sha256(data).hexdigest(), size=len(data))


@pytest.fixture
def commit(hub: LocalHub) -> str:
    return hub.publish(REPO, {"model.safetensors": WEIGHTS, "small.safetensors": SMALL})


def test_a_trickle_is_cut_and_resumed_from_the_bytes_on_disk(
    hub: LocalHub, hf_cache: Path, commit: str
) -> None:
    hub.faults.throttle("*/model.safetensors", 100)  # the first GET trickles at 100 B/s
    cuts_before = watchdog.cuts()
    started = time.monotonic()

    result = fetch(
        ref(commit, "model.safetensors", WEIGHTS),
        cache_dir=hf_cache,
        endpoint=hub.url,
        retry=FAST,
        speed_floor=SpeedFloor(bytes_per_second=50_000, window=1.0),
    )

    assert time.monotonic() - started < 15  # at 100 B/s it would take six hours
    assert result.blob.read_bytes() == WEIGHTS
    assert watchdog.cuts() == cuts_before + 1
    gets = hub.wait_for_requests("*/model.safetensors", "GET", count=2)
    trickled, resumed = sorted((r.range or "", r.bytes_sent) for r in gets)
    assert trickled[0] == "" and 0 < trickled[1] < 10_000
    # The second GET continues from the bytes on disk: what the trickle delivered, less at
    # most the span the hub sent while the client was already hanging up.
    offset = int(resumed[0].removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= trickled[1] and trickled[1] - offset <= 100
    assert resumed[1] == len(WEIGHTS) - offset


def test_a_slow_but_steady_body_is_not_cut(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    hub.faults.throttle("*/small.safetensors", 60_000)  # ~2.5 s for the file, above the floor
    cuts_before = watchdog.cuts()

    result = fetch(
        ref(commit, "small.safetensors", SMALL),
        cache_dir=hf_cache,
        endpoint=hub.url,
        retry=FAST,
        speed_floor=SpeedFloor(bytes_per_second=20_000, window=0.5),
    )

    assert result.blob.read_bytes() == SMALL
    assert watchdog.cuts() == cuts_before
    assert [r.range for r in hub.requests_for("*/small.safetensors", "GET")] == [None]


def test_a_silent_body_is_cut_after_one_window(hub: LocalHub, hf_cache: Path, commit: str) -> None:
    held = hub.faults.hold("*/model.safetensors", after_bytes=MIB)
    started = time.monotonic()

    result = fetch(
        ref(commit, "model.safetensors", WEIGHTS),
        cache_dir=hf_cache,
        endpoint=hub.url,
        retry=FAST,
        speed_floor=SpeedFloor(bytes_per_second=1_000, window=0.5),
    )

    assert time.monotonic() - started < 10  # not the 30 s read timeout
    assert result.blob.read_bytes() == WEIGHTS
    held.release()
    ranges = sorted(
        r.range or "" for r in hub.wait_for_requests("*/model.safetensors", "GET", count=2)
    )
    assert ranges == ["", f"bytes={MIB}-"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_defaults_cut_a_100_bytes_per_second_trickle_within_a_minute() -> None:
    clock = Clock()
    dog = Watchdog(DEFAULT_FLOOR, "file", clock)
    with pytest.raises(HubError) as caught:
        for _ in range(600):
            clock.now += 0.1
            dog.passed(10)  # 100 B/s
    assert caught.value.transient
    assert clock.now <= 60
    assert "below the floor" in caught.value.message


def test_the_defaults_leave_a_slow_honest_link_alone() -> None:
    clock = Clock()
    dog = Watchdog(DEFAULT_FLOOR, "file", clock)
    for second in range(600):  # ten minutes at 4 kB/s with a 20-second stall in the middle
        clock.now += 1.0
        dog.passed(0 if 300 <= second < 320 else 4_000)


def test_a_floor_of_zero_never_cuts() -> None:
    clock = Clock()
    dog = Watchdog(SpeedFloor(bytes_per_second=0), "file", clock)
    clock.now = 3600.0
    dog.passed(0)

"""The low-speed bound holds for revision lookups too: an answer that trickles or hangs is
cut within the window, asked again, then failed with a message, and each cut is counted by
kind for ``/metrics``.  Against the local hub over real HTTP, with a short window."""

from __future__ import annotations

import time

from controller.api.metrics import Metrics, SampleCollector
from controller.domain import Reason, RemoteProblem, RemoteRevision
from controller.hub import revisions, watchdog
from controller.hub.watchdog import SpeedFloor, Transfer
from tests.support.hub import LocalHub

REPO = "org/slow-answers"
FLOOR = SpeedFloor(bytes_per_second=1000, window=0.5)
ATTEMPTS = 1 + len(revisions.RESOLVE_RETRY_DELAYS_S)


def test_a_trickling_answer_is_cut_asked_again_and_failed(hub: LocalHub) -> None:
    hub.publish(REPO, {"config.json": b"{}"})
    hub.faults.throttle(f"/api/models/{REPO}/revision/*", 20, times=None)
    before = watchdog.cuts(Transfer.REVISION)
    started = time.monotonic()
    answer = revisions.resolve(REPO, "main", hub.url, FLOOR)
    assert isinstance(answer, RemoteProblem)
    assert answer.reason is Reason.HUB_UNREACHABLE
    assert "below the floor of 1.0 kB/s over 0.5 s" in answer.message
    assert watchdog.cuts(Transfer.REVISION) - before == ATTEMPTS
    assert time.monotonic() - started < 10  # not the ~30 s the whole answer would take


def test_a_withheld_answer_is_cut_as_a_stall(hub: LocalHub) -> None:
    hub.publish(REPO, {"config.json": b"{}"})
    hub.faults.stall(f"/api/models/{REPO}/revision/*", 20, times=ATTEMPTS)
    before = watchdog.cuts(Transfer.REVISION)
    answer = revisions.resolve(REPO, "main", hub.url, FLOOR)
    assert isinstance(answer, RemoteProblem)
    assert "below the floor" in answer.message
    assert watchdog.cuts(Transfer.REVISION) - before == ATTEMPTS


def test_a_trickle_that_ends_in_time_is_answered(hub: LocalHub) -> None:
    commit = hub.publish(REPO, {"config.json": b"{}"})
    hub.faults.throttle(f"/api/models/{REPO}/revision/*", 100_000)
    answer = revisions.resolve(REPO, "main", hub.url, FLOOR)
    assert isinstance(answer, RemoteRevision) and answer.commit == commit


def test_metrics_show_every_kind_of_cut_from_the_start() -> None:
    sample = Metrics().sample(report=None, downloaded={}, disk=None, budget_bytes=None, ready=True)
    family = next(
        f
        for f in SampleCollector(lambda: sample).collect()
        if f.name == "modelsync_transfer_stalls"
    )
    counted = {s.labels["kind"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert counted == {
        "file": watchdog.cuts(Transfer.FILE),
        "revision": watchdog.cuts(Transfer.REVISION),
    }

"""The controller's pure parts: trigger coalescing, backoff, stop signals, settings, the bus."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from controller.api.events import SUBSCRIBER_QUEUE, EventBus, EventKind, parse_sse
from controller.cli.logs import JsonFormatter
from controller.domain import Reason
from controller.manifest.fields import parse_duration
from controller.manifest.loading import load_manifests
from controller.manifest.problems import ManifestError
from controller.planning.backoff import BackoffBook, BackoffPolicy
from controller.planning.status import Failure
from controller.runtime.loop import Trigger, TriggerQueue
from controller.system.cancel import Cancelled, StopSignal
from tests.support.factories import NOW

BROKEN = Failure(reason=Reason.DOWNLOAD_FAILED, message="HTTP 503")


# --------------------------------------------------------------------------- triggers


def test_triggers_during_a_pass_coalesce_into_exactly_one_more_pass() -> None:
    queue = TriggerQueue()
    queue.put(Trigger.STARTUP)
    assert queue.take(timeout=0) == {Trigger.STARTUP}  # the pass starts
    for trigger in (Trigger.MANIFEST, Trigger.RESYNC, Trigger.MANIFEST, Trigger.RECONCILE):
        queue.put(trigger)  # arrive while it runs
    assert queue.take(timeout=0) == {Trigger.MANIFEST, Trigger.RESYNC, Trigger.RECONCILE}
    assert queue.take(timeout=0) == frozenset()  # nothing left: no third pass


def test_take_waits_for_a_trigger_from_another_thread() -> None:
    queue = TriggerQueue()
    threading.Timer(0.05, queue.put, args=(Trigger.MODEL,)).start()
    assert queue.take(timeout=10) == {Trigger.MODEL}


def test_closing_the_queue_ends_the_loop_even_with_triggers_pending() -> None:
    queue = TriggerQueue()
    queue.put(Trigger.RESYNC)
    queue.close()
    queue.put(Trigger.MANIFEST)
    assert queue.take(timeout=0) is None and queue.closed


def test_only_resyncs_and_health_checks_plan_without_the_hub() -> None:
    local = {t for t in Trigger if not t.asks_hub}
    assert local == {Trigger.RESYNC, Trigger.HEALTH_CHECK}


# --------------------------------------------------------------------------- backoff


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = BackoffPolicy(base=30, cap=3600)
    assert [policy.delay(n) for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert policy.delay(10_000) == 3600  # no overflow however long it fails


def test_a_failing_model_is_held_until_its_next_attempt_and_the_others_are_not() -> None:
    book = BackoffBook(BackoffPolicy(base=30, cap=3600))
    book.record(NOW, failures={"bad": BROKEN}, succeeded=["good"])
    held = book.held(NOW + timedelta(seconds=10))
    assert set(held) == {"bad"}
    assert held["bad"].reason is Reason.DOWNLOAD_FAILED
    assert held["bad"].message == "HTTP 503; attempt 2 at 12:00:30 UTC"
    assert book.seconds_until_due(NOW + timedelta(seconds=10)) == 20
    assert book.held(NOW + timedelta(seconds=30)) == {}  # due: the next pass tries it


def test_each_further_failure_waits_longer_and_a_success_forgives() -> None:
    book = BackoffBook(BackoffPolicy(base=30, cap=3600))
    at = NOW
    waits = []
    for _ in range(4):
        book.record(at, failures={"bad": BROKEN}, succeeded=[])
        entry = book.entry("bad")
        assert entry is not None
        waits.append((entry.next_attempt - at).total_seconds())
        at = entry.next_attempt
    assert waits == [30, 60, 120, 240]
    book.record(at, failures={}, succeeded=["bad"])
    assert book.entry("bad") is None and book.seconds_until_due(at) is None


def test_clearing_the_backoff_lets_a_model_try_at_once() -> None:
    book = BackoffBook(BackoffPolicy())
    book.record(NOW, failures={"a": BROKEN, "b": BROKEN}, succeeded=[])
    book.clear(["a"])
    assert set(book.held(NOW)) == {"b"}
    book.clear()
    assert book.held(NOW) == {}


# --------------------------------------------------------------------------- stopping


def test_stopping_one_model_wakes_only_its_work() -> None:
    signal = StopSignal()
    woken: list[str] = []
    with (
        signal.waking("a", lambda: woken.append("a")),
        signal.waking("b", lambda: woken.append("b")),
    ):
        signal.stop_model("a")
    assert woken == ["a"]
    assert signal.stopped("a") and not signal.stopped("b")
    with pytest.raises(Cancelled):
        signal.for_model("a").check()
    signal.for_model("b").check()


def test_stop_all_wakes_everything_and_later_work_at_once() -> None:
    signal = StopSignal()
    woken: list[str] = []
    with signal.waking("a", lambda: woken.append("a")):
        signal.stop_all()
    with signal.waking("c", lambda: woken.append("c")):  # registered after the stop
        pass
    assert woken == ["a", "c"] and signal.all_stopped and signal.stopped("anything")


# --------------------------------------------------------------------------- settings


def _manifest(tmp_path: Path, controller: dict[str, object]) -> Path:
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "w"},
        "spec": {"controller": controller, "models": []},
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_controller_settings_have_defaults_and_take_durations(tmp_path: Path) -> None:
    defaults = load_manifests(_manifest(tmp_path, {})).controller
    assert (defaults.host, defaults.port) == ("127.0.0.1", 8477)
    assert defaults.seconds(defaults.resync_interval) == 60
    assert defaults.seconds(defaults.update_check_interval) == 3600
    chosen = load_manifests(
        _manifest(tmp_path, {"resync_interval": "500ms", "health_check_interval": None})
    ).controller
    assert chosen.seconds(chosen.resync_interval) == 0.5
    assert chosen.seconds(chosen.health_check_interval) is None
    assert [parse_duration(d) for d in ("30s", "5m", "1.5h", "1d")] == [30, 300, 5400, 86400]


def test_a_bad_duration_is_reported_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as e:
        load_manifests(_manifest(tmp_path, {"resync_interval": "often", "port": 70000}))
    text = str(e.value)
    assert "spec.controller.resync_interval: invalid duration 'often'" in text
    assert "spec.controller.port: must be at most 65535" in text


# --------------------------------------------------------------------------- events


def test_subscribers_get_their_kinds_and_a_laggard_is_dropped_not_waited_for() -> None:
    bus = EventBus()
    phases = bus.subscribe([EventKind.PHASE])
    everything = bus.subscribe()
    bus.publish(EventKind.PROGRESS, {"model": "a"})
    bus.publish(EventKind.PHASE, {"model": "a", "phase": "AVAILABLE"})
    got = phases.get(timeout=1)
    assert got is not None and got.kind is EventKind.PHASE and got.data["phase"] == "AVAILABLE"
    for i in range(SUBSCRIBER_QUEUE + 1):
        bus.publish(EventKind.PROGRESS, {"i": i})
    assert everything.closed  # too far behind: its stream ends, the publisher never blocks
    assert bus.publish(EventKind.PHASE, {}).id == SUBSCRIBER_QUEUE + 4


def test_an_event_round_trips_through_the_sse_framing() -> None:
    bus = EventBus()
    event = bus.publish(EventKind.PROGRESS, {"model": "a", "bytes_done": 5})
    lines = [": keep-alive", "", *event.to_sse().decode().split("\n")]
    ((name, data),) = list(parse_sse(lines))
    assert name == "progress"
    assert yaml.safe_load(data) == {
        "id": event.id,
        "kind": "progress",
        "at": event.at.isoformat(),
        "model": "a",
        "bytes_done": 5,
    }


# --------------------------------------------------------------------------- logs


def test_json_logs_carry_structured_fields_and_never_a_token() -> None:
    record = logging.makeLogRecord(
        {
            "name": "modelsync.watch",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "%s: denied with Authorization: Bearer %s",
            "args": ("a", "hf_" + "x" * 30),
            "model": "a",
            "phase": "FAILED",
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "info" and entry["logger"] == "modelsync.watch"
    assert (entry["model"], entry["phase"]) == ("a", "FAILED")
    assert entry["message"] == "a: denied with Authorization: Bearer hf_***"

"""The long-running controller end to end: ``reconcile --watch`` in a subprocess, a real hub
over HTTP, real files, its real HTTP API.

Every wait polls with a deadline; a transfer is held at a known byte with the hub's ``hold``
fault whenever a test must act in the middle of one.  Periodic jobs are set far apart in the
manifest (``QUIET``) unless a test is about them, so passes happen only when a test asks.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import hf_hub_download
from prometheus_client.parser import text_string_to_metric_families

from controller.api.client import ModelAvailability
from controller.api.events import EventKind, Follower
from controller.hub.transfer import CHUNK_SIZE, DEFAULT_RETRY
from controller.runtime.process import STOP_GRACE_SECONDS
from tests.support.cli import DEADLINE_S, Workdir, wait_until
from tests.support.hub import LocalHub

MIB = 1024 * 1024
CONFIG = b'{"model_type": "watched"}\n'
QUIET = {
    "port": 0,
    "resync_interval": "1h",
    "update_check_interval": None,
    "health_check_interval": None,
}


def status_of(work: Workdir, model: str) -> dict[str, Any]:
    """The model's entry in the status file; empty until the file has one."""
    if not work.status_file.exists():
        return {}
    found = [m for m in work.status()["models"] if m["name"] == model]
    return found[0] if found else {}


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


@dataclass
class Controller:
    """One ``reconcile --watch`` process and its API."""

    work: Workdir
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    token: str | None = None

    def call(self, method: str, path: str, *, token: str | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, method=method)
        if method == "POST":
            request.data = b""
        bearer = token if token is not None else self.token
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method: str, path: str) -> Any:
        code, body = self.call(method, path)
        assert code < 300, (code, body)
        return json.loads(body)

    def phase(self, model: str) -> str:
        """The model's live phase; empty while the controller does not know the model."""
        code, body = self.call("GET", f"/v1/models/{model}")
        return str(json.loads(body)["phase"]) if code == 200 else ""

    def passes(self) -> float:
        """Passes finished so far, from /metrics."""
        code, text = self.call("GET", "/metrics")
        assert code == 200, text
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        return families["modelsync_reconciles"].samples[0].value

    def requested_pass(self) -> dict[str, Any]:
        """POST /v1/reconcile and wait until the very pass it asked for has finished; returns
        that pass's ``finished`` event.

        The pass count in /metrics is no substitute: it goes up before the pass's backoff
        bookkeeping and verify-failure counts, and a count read while an earlier pass (the
        startup pass, whose models turn AVAILABLE mid-pass) is still running goes up when
        *that* pass ends.  The ``finished`` event comes after all of it, and names the
        triggers the pass took.
        """
        finished: list[dict[str, Any]] = []

        def on_event(e: dict[str, Any]) -> None:
            if e.get("state") == "finished" and "reconcile" in e.get("triggers", ()):
                finished.append(e)

        follower = Follower(self.url, on_event, kinds=[EventKind.RECONCILE], token=self.token)
        try:
            assert follower.connected.wait(DEADLINE_S), "the event stream did not connect"
            code, body = self.call("POST", "/v1/reconcile")
            assert code == 202, body
            wait_until(lambda: self.alive() and finished, "the requested pass to finish")
        finally:
            follower.close()
        return finished[0]

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"the controller exited:\n{self.logs()}"
        return True

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, deadline: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the controller did not stop:\n{self.logs()}") from None


@dataclass
class Controllers:
    """Starts controllers for a test and makes sure none outlives it."""

    running: list[Controller] = field(default_factory=list)

    def start(self, work: Workdir, *args: str, env: dict[str, str] | None = None) -> Controller:
        log = work.root / f"controller-{len(self.running)}.log"
        info = work.state / "controller.json"
        proc = work.start("--watch", *args, env=env, log=log)
        c = Controller(work, proc, log, token=(env or {}).get("MODELSYNC_API_TOKEN"))
        self.running.append(c)

        def published() -> dict[str, Any] | None:
            c.alive()
            try:
                data: dict[str, Any] = json.loads(info.read_text())
            except (OSError, ValueError):
                return None
            return data if data["pid"] == proc.pid else None

        c.url = wait_until(published, "the controller to publish its address")["url"]
        return c

    def stop_all(self) -> None:
        for c in self.running:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()


@pytest.fixture
def controllers() -> Iterator[Controllers]:
    started = Controllers()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture(scope="module")
def weights() -> bytes:
    return os.urandom(6 * MIB)  # random: a resume from a wrong offset can never hash right


def blob(work: Workdir, repo: str, path: str) -> bytes:
    local = hf_hub_download(repo, path, cache_dir=work.cache, local_files_only=True)
    return Path(local).read_bytes()


def partial_of(work: Workdir, repo: str, content: bytes) -> Path:
    sha = hashlib.sha256(content).hexdigest()
    return work.cache / f"models--{repo.replace('/', '--')}" / "blobs" / f"{sha}.incomplete"


def range_start(header: str | None) -> int:
    assert header is not None and header.startswith("bytes="), header
    return int(header.removeprefix("bytes=").split("-")[0])


# --------------------------------------------------------------------------- manifests


def test_manifest_edits_converge_and_sighup_rereads(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/a", {"config.json": CONFIG, "weights.bin": b"a" * 300_000})
    hub.publish("org/b", {"config.json": CONFIG, "weights.bin": b"b" * 200_000})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a"}], controller=QUIET)
    c = controllers.start(work, "--log-format", "json")
    wait_until(lambda: c.alive() and c.phase("a") == "AVAILABLE", "a to be available")

    work.write_manifest(
        [{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b"}], controller=QUIET
    )

    wait_until(
        lambda: c.alive() and status_of(work, "b").get("phase") == "AVAILABLE",
        "the model added by the edit to be downloaded and in the status file",
    )
    assert c.phase("b") == "AVAILABLE"
    assert blob(work, "org/b", "weights.bin") == b"b" * 200_000
    before = c.logs().count('"message": "reconcile: manifest"')
    c.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: c.logs().count('"message": "reconcile: manifest"') > before,
        "SIGHUP to re-read the manifests and reconcile",
    )
    assert c.stop() == 0
    records = [json.loads(line) for line in c.logs().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    phases = [(r["model"], r["phase"]) for r in records if "phase" in r]
    assert ("b", "DOWNLOADING") in phases and ("b", "AVAILABLE") in phases


def test_an_invalid_edit_is_reported_and_the_last_good_manifest_stays(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/a", {"config.json": CONFIG, "weights.bin": b"a" * 300_000})
    hub.publish("org/b", {"config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    good = [{"name": "a", "repo": "org/a"}]
    manifest = work.write_manifest(good, controller=QUIET)
    c = controllers.start(work)
    wait_until(lambda: c.alive() and c.phase("a") == "AVAILABLE", "a to be available")
    weights = Path(
        hf_hub_download("org/a", "weights.bin", cache_dir=work.cache, local_files_only=True)
    )
    stat = weights.resolve().stat()

    work.write_manifest([{"name": "a", "repo": "org/a", "priority": "urgent"}], controller=QUIET)

    def reported() -> bool:
        return any(f"{manifest}:" in e and "priority" in e for e in work.status()["errors"])

    wait_until(reported, "the rejected edit to be reported in the status file")
    errors = c.json("GET", "/v1/status")["errors"]
    assert any("invalid value 'urgent'" in e for e in errors), errors
    c.requested_pass()  # a pass now still uses the last good one
    assert status_of(work, "a").get("phase") == "AVAILABLE" and reported()
    assert (weights.resolve().stat().st_ino, weights.resolve().stat().st_mtime_ns) == (
        stat.st_ino,
        stat.st_mtime_ns,
    )
    assert "manifest rejected" in c.logs()

    work.write_manifest([*good, {"name": "b", "repo": "org/b"}], controller=QUIET)

    wait_until(lambda: c.alive() and c.phase("b") == "AVAILABLE", "the fixed edit to apply")
    assert work.status()["errors"] == [] and c.json("GET", "/v1/status")["errors"] == []


# --------------------------------------------------------------------------- updates


def test_update_checks_notify_then_auto_switches_without_a_gap(
    tmp_path: Path, hub: LocalHub, controllers: Controllers, weights: bytes
) -> None:
    old = weights[: 3 * MIB]
    new = weights[3 * MIB :]
    v1 = hub.publish("org/m", {"config.json": CONFIG, "weights.bin": old})
    work = Workdir(tmp_path / "work", hub.url)
    checks = {**QUIET, "update_check_interval": "500ms"}
    work.write_manifest([{"name": "m", "repo": "org/m", "updates": "notify"}], controller=checks)
    c = controllers.start(work)
    wait_until(lambda: c.alive() and c.phase("m") == "AVAILABLE", "m to be available")

    v2 = hub.publish("org/m", {"config.json": CONFIG, "weights.bin": new})

    def notified() -> dict[str, Any] | None:
        m: dict[str, Any] = status_of(work, "m")
        return m if m["update_available"] else None

    m = wait_until(notified, "an update check to report the moved branch")
    assert (m["phase"], m["commit"], m["upstream_commit"]) == ("AVAILABLE", v1, v2)
    assert blob(work, "org/m", "weights.bin") == old  # notify: nothing changes on disk

    seen: list[bytes] = []
    misses: list[str] = []
    polling = threading.Event()

    def poll() -> None:
        # What an application loading the model sees, as often as it can, during the switch:
        # like from_pretrained, it resolves the file's path first and reads it a moment later,
        # so some reads resolve the old snapshot just before the flip and read it just after.
        while polling.is_set():
            try:
                local = hf_hub_download(
                    "org/m", "weights.bin", cache_dir=work.cache, local_files_only=True
                )
                time.sleep(0.01)
                content = Path(local).read_bytes()
            except Exception as e:
                misses.append(repr(e))
                continue
            if not seen or seen[-1] != content:
                seen.append(content)

    polling.set()
    reader = threading.Thread(target=poll)
    reader.start()
    try:
        wait_until(lambda: seen or misses, "the application's first load")
        hold = hub.faults.hold(f"/org/m/resolve/{v2}/weights.bin", after_bytes=MIB)
        work.write_manifest([{"name": "m", "repo": "org/m", "updates": "auto"}], controller=checks)
        wait_until(hold.reached.is_set, "the new commit's download to start")
        wait_until(lambda: c.phase("m") == "UPDATING", "the UPDATING phase")
        assert seen == [old]  # the old commit serves while the new one downloads
        # A load that resolved the old snapshot before the switch and reads after it.
        resolved_before = Path(
            hf_hub_download("org/m", "weights.bin", cache_dir=work.cache, local_files_only=True)
        )
        hold.release()
        wait_until(
            lambda: (
                status_of(work, "m").get("commit") == v2
                and status_of(work, "m").get("phase") == "AVAILABLE"
            ),
            "the ref to flip to the verified new commit",
        )
        wait_until(lambda: seen[-1] == new, "applications to load the new commit")
        # Passes go on after the switch (an update check every 500 ms): none may take the
        # old revision from under a load that resolved it before the switch.  The ref flips
        # mid-pass, and a pass is counted only when it ends: the count read now may not
        # include the switching pass yet, so of three more counted passes at least two
        # started after the switch.
        after = c.passes()
        wait_until(lambda: c.passes() >= after + 3, "two whole passes after the switch")
    finally:
        polling.clear()
        reader.join()
    assert misses == [] and seen == [old, new]
    assert status_of(work, "m").get("update_available") is False
    # The old revision outlives the switch by its grace period, and the status says so.
    assert resolved_before.read_bytes() == old
    (held,) = work.status()["retention"]["deletions"]
    assert (held["commit"], held["reason"], held["state"]) == (v1, "OldRevision", "held")
    assert "for applications that resolved it before the switch" in held["held_because"]


# --------------------------------------------------------------------------- pause, stop


def test_suspend_mid_download_pauses_keeps_the_bytes_and_resume_finishes(
    tmp_path: Path, hub: LocalHub, controllers: Controllers, weights: bytes
) -> None:
    hub.publish("org/big", {"config.json": CONFIG, "weights.bin": weights})
    work = Workdir(tmp_path / "work", hub.url)
    model = {"name": "big", "repo": "org/big"}
    work.write_manifest([model], controller=QUIET)
    partial = partial_of(work, "org/big", weights)
    held_at = 2 * MIB
    hold = hub.faults.hold("*/weights.bin", after_bytes=held_at)
    c = controllers.start(work)
    try:
        wait_until(lambda: c.alive() and hold.reached.is_set(), "the hub to send the first bytes")
        wait_until(lambda: size_of(partial) >= held_at - CHUNK_SIZE, "bytes on disk")

        work.write_manifest([{**model, "suspend": True}], controller=QUIET)

        # The transfer is blocked on the held socket: the stop has to wake it.
        wait_until(lambda: status_of(work, "big").get("phase") == "PAUSED", "the PAUSED phase")
        kept = size_of(partial)
        assert kept >= held_at - CHUNK_SIZE
        assert partial.with_name(partial.name + ".json").is_file()  # resumable
        assert "stopped at a safe point" in c.logs()
    finally:
        hold.release()
    c.alive()
    hub.wait_for_requests("*/weights.bin", "GET")  # the stopped GET, once released
    hub.clear_requests()

    work.write_manifest([model], controller=QUIET)

    wait_until(lambda: c.phase("big") == "AVAILABLE", "the resumed download to finish")
    (get,) = hub.requests_for("*/weights.bin", "GET")
    assert get.status == 206 and range_start(get.range) >= kept
    assert blob(work, "org/big", "weights.bin") == weights


def test_a_pause_through_the_api_holds_across_restarts_and_shows_in_plans(
    tmp_path: Path, hub: LocalHub, controllers: Controllers, weights: bytes
) -> None:
    hub.publish("org/big", {"config.json": CONFIG, "weights.bin": weights})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "big", "repo": "org/big"}], controller=QUIET)
    hold = hub.faults.hold("*/weights.bin", after_bytes=MIB)
    c = controllers.start(work)
    try:
        wait_until(lambda: c.alive() and hold.reached.is_set(), "the download to start")
        paused = c.json("POST", "/v1/models/big/pause")
        assert paused["phase"] == "PAUSED" and "paused through the API" in paused["message"]
        wait_until(lambda: status_of(work, "big").get("phase") == "PAUSED", "the status to say so")
        assert c.stop() == 0
    finally:
        hold.release()
    plan = work.reconcile("--plan", "--detailed-exitcode")
    assert plan.code == 0, plan.out + plan.err  # nothing to do while it is paused
    assert "big: paused through the API" in plan.out + plan.err

    hub.wait_for_requests("*/weights.bin", "GET")  # the stopped GET, once released
    hub.clear_requests()
    again = controllers.start(work)
    wait_until(lambda: again.passes() >= 1, "the restarted controller's first pass")
    assert status_of(work, "big").get("phase") == "PAUSED"
    assert hub.requests_for("*/weights.bin", "GET") == []

    assert again.json("POST", "/v1/models/big/resume")["phase"] != "PAUSED"

    wait_until(lambda: again.phase("big") == "AVAILABLE", "the resumed download to finish")
    assert blob(work, "org/big", "weights.bin") == weights


def test_sigterm_mid_download_exits_cleanly_and_the_next_start_resumes(
    tmp_path: Path, hub: LocalHub, controllers: Controllers, weights: bytes
) -> None:
    hub.publish("org/big", {"config.json": CONFIG, "weights.bin": weights})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "big", "repo": "org/big"}], controller=QUIET)
    partial = partial_of(work, "org/big", weights)
    held_at = 3 * MIB
    hold = hub.faults.hold("*/weights.bin", after_bytes=held_at)
    c = controllers.start(work)
    try:
        wait_until(lambda: c.alive() and hold.reached.is_set(), "the download to start")
        wait_until(lambda: size_of(partial) >= held_at - CHUNK_SIZE, "bytes on disk")
        asked = time.monotonic()
        assert c.stop(signal.SIGTERM) == 0
        took = time.monotonic() - asked
    finally:
        hold.release()
    # Woken from the held socket, not given up on after the grace period (a stop that hit
    # it would still exit 0, and only say so in the log).
    assert "did not stop within" not in c.logs()
    assert took < STOP_GRACE_SECONDS, f"stopping took {took:.1f} s"
    kept = size_of(partial)
    assert kept >= held_at - CHUNK_SIZE
    assert not (work.state / "controller.json").exists()
    status = status_of(work, "big")
    assert status["phase"] == "MISSING" and status["progress"] is None  # final, not mid-transfer
    assert "stopping at the next safe point" in c.logs()

    hub.wait_for_requests("*/weights.bin", "GET")  # the stopped GET, once released
    hub.clear_requests()
    again = controllers.start(work)
    wait_until(lambda: again.phase("big") == "AVAILABLE", "the next start to finish it")
    (get,) = hub.requests_for("*/weights.bin", "GET")
    assert range_start(get.range) >= kept
    assert blob(work, "org/big", "weights.bin") == weights


def test_a_second_controller_on_the_same_cache_refuses(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/a", {"config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a"}], controller=QUIET)
    first = controllers.start(work)

    second = work.reconcile("--watch", "--port", "0")

    assert second.code == 1
    assert "another modelsync controller is already running" in second.err
    assert f"pid {first.proc.pid}" in second.err and first.url in second.err
    first.alive()


def test_offline_no_pass_asks_the_hub_and_files_are_relinked_from_cached_blobs(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/a", {"config.json": CONFIG, "weights.bin": b"a" * 300_000})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a", "updates": "auto"}], controller=QUIET)
    assert work.reconcile("--apply").code == 0  # the hub's answer is remembered
    v1 = status_of(work, "a")["commit"]
    # Upstream moves: an online controller would download and switch to it at start.
    hub.publish("org/a", {"config.json": CONFIG, "weights.bin": b"b" * 300_000})
    link = Path(
        hf_hub_download("org/a", "weights.bin", cache_dir=work.cache, local_files_only=True)
    )
    link.unlink()  # its blob stays: a pass can put the file back without the hub
    hub.clear_requests()

    c = controllers.start(work, "--offline")

    wait_until(lambda: c.alive() and c.passes() >= 1, "the first pass")
    assert blob(work, "org/a", "weights.bin") == b"a" * 300_000
    a = status_of(work, "a")
    assert (a["phase"], a["commit"], a["update_available"]) == ("AVAILABLE", v1, False)
    c.requested_pass()  # online, this pass would ask the hub
    assert hub.requests == []
    assert "offline: no request is sent to the hub" in c.logs()


# --------------------------------------------------------------------------- the API


def test_a_lease_is_taken_and_released_over_http(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/a", {"config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a"}], controller=QUIET)
    c = controllers.start(work)
    wait_until(lambda: c.alive() and c.phase("a") == "AVAILABLE", "a to be available")
    code, body = c.call("POST", "/v1/models/a/lease")
    assert code == 200, body
    lease_id = json.loads(body)["lease_id"]
    code, body = c.call("DELETE", f"/v1/models/a/lease/{lease_id}")
    assert code == 200, body
    with ModelAvailability(work.manifests) as client:
        assert client.release_lease("a", lease_id) is False  # already gone


def test_probes_metrics_the_event_stream_and_the_api_document(
    tmp_path: Path, hub: LocalHub, controllers: Controllers, weights: bytes
) -> None:
    content = weights[: 4 * MIB]
    hub.publish("org/big", {"config.json": CONFIG, "weights.bin": content})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(
        [{"name": "big", "repo": "org/big", "priority": "critical"}],
        controller=QUIET,
        downloads={"max_bandwidth": "3MB/s"},  # a transfer long enough to report progress
    )
    hold = hub.faults.hold("*/weights.bin", after_bytes=MIB)
    c = controllers.start(work)
    events: list[dict[str, Any]] = []
    with ModelAvailability(work.manifests) as client:
        follower = client.subscribe(events.append)
        try:
            assert follower.connected.wait(DEADLINE_S)
            wait_until(hold.reached.is_set, "the download to start")
            assert c.call("GET", "/healthz")[0] == 200
            code, body = c.call("GET", "/readyz")
            assert code == 503 and json.loads(body)["waiting"][0]["model"] == "big"
            hold.release()
            wait_until(lambda: c.call("GET", "/readyz")[0] == 200, "/readyz to turn ready")
            wait_until(
                lambda: any(e["kind"] == "phase" and e["phase"] == "AVAILABLE" for e in events),
                "the AVAILABLE event",
            )
            # A model turns AVAILABLE mid-pass; the pass is counted only once it has finished.
            wait_until(
                lambda: any(e["kind"] == "reconcile" and e["state"] == "finished" for e in events),
                "the pass to finish",
            )
        finally:
            hold.release()
            follower.close()
    assert events[0]["kind"] == "status"
    # The stream starts with the status as it stands, so a phase entered before the subscriber
    # connected is in that first event rather than in a phase event of its own.
    first = events[0]["status"] or {"models": []}
    phases = [m["phase"] for m in first["models"] if m["name"] == "big"]
    phases += [e["phase"] for e in events if e["kind"] == "phase" and e["model"] == "big"]
    assert phases[-2:] == ["DOWNLOADING", "AVAILABLE"]
    progress = [e for e in events if e["kind"] == "progress" and e["model"] == "big"]
    size = len(content) + len(CONFIG)
    assert all(p["bytes_total"] == size for p in progress)
    assert any(0 < p["bytes_done"] < size and p["bytes_per_second"] for p in progress)
    assert progress[-1]["bytes_done"] == size and progress[-1]["files_done"] == 2

    code, text = c.call("GET", "/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    assert samples[("modelsync_model_phase", (("model", "big"), ("phase", "AVAILABLE")))] == 1
    assert samples[("modelsync_model_phase", (("model", "big"), ("phase", "MISSING")))] == 0
    assert samples[("modelsync_downloaded_bytes_total", (("model", "big"),))] >= size - MIB
    assert samples[("modelsync_reconciles_total", ())] >= 1
    assert samples[("modelsync_ready", ())] == 1
    assert samples[("modelsync_disk_used_bytes", ())] == size
    assert samples[("modelsync_disk_budget_bytes", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 10_000_000  # the controller's own
    assert samples[("process_cpu_seconds_total", ())] > 0

    code, body = c.call("GET", "/openapi.json")
    assert code == 200
    document = json.loads(body)
    operations = {
        (method.upper(), path)
        for path, ops in document["paths"].items()
        for method in ops
        if path.startswith("/v1/")
    }
    assert operations >= {
        ("GET", "/v1/status"),
        ("GET", "/v1/models/{name}"),
        ("POST", "/v1/models/{name}/request"),
        ("POST", "/v1/models/{name}/use"),
        ("POST", "/v1/models/{name}/pause"),
        ("POST", "/v1/models/{name}/resume"),
        ("POST", "/v1/models/{name}/lease"),
        ("DELETE", "/v1/models/{name}/lease/{lease_id}"),
        ("POST", "/v1/reconcile"),
        ("GET", "/v1/events"),
    }
    request = document["paths"]["/v1/models/{name}/request"]["post"]["responses"]["200"]
    assert request["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ModelRequestResult"
    )
    assert "StatusReport" in document["components"]["schemas"]


def test_beyond_loopback_a_token_is_required_and_checked(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/a", {"config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a"}], controller=QUIET)

    refused = work.reconcile("--watch", "--host", "0.0.0.0", "--port", "0")
    assert refused.code == 1 and "MODELSYNC_API_TOKEN" in refused.err

    c = controllers.start(work, "--host", "0.0.0.0", env={"MODELSYNC_API_TOKEN": "s3cret"})
    # Probes stay open.  The address is published before the loop starts, and /healthz says
    # 503 until it has: wait for the 200, which a 401 would never turn into.
    wait_until(
        lambda: c.call("GET", "/healthz", token="")[0] == 200, "/healthz to answer without a token"
    )
    assert c.call("GET", "/v1/status", token="")[0] == 401
    assert c.call("GET", "/v1/status", token="wrong")[0] == 401
    assert c.call("GET", "/metrics", token="")[0] == 401
    assert c.call("GET", "/openapi.json", token="")[0] == 401
    assert c.call("GET", "/v1/status")[0] == 200


def test_a_failing_model_backs_off_without_holding_up_the_others(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/bad", {"config.json": CONFIG, "weights.bin": b"x" * 100_000})
    hub.publish("org/good", {"config.json": CONFIG, "weights.bin": b"y" * 100_000})
    work = Workdir(tmp_path / "work", hub.url)
    models = [
        {"name": "bad", "repo": "org/bad", "priority": "critical"},
        {"name": "good", "repo": "org/good"},
    ]
    work.write_manifest(models, controller={**QUIET, "resync_interval": "200ms"})
    hub.faults.fail("/org/bad/resolve/*/weights.bin", 503, retry_after=0, times=None)
    c = controllers.start(work)

    bad = wait_until(
        lambda: (
            c.alive()
            and (m := status_of(work, "bad")).get("phase") == "FAILED"
            and "attempt 2 at" in m["message"]
            and m
        ),
        "the failing model to back off",
    )
    assert "HTTP 503" in bad["message"]
    assert status_of(work, "good").get("phase") == "AVAILABLE"

    start = c.passes()
    wait_until(lambda: c.passes() >= start + 3, "a few resyncs")
    attempts = hub.requests_for("/org/bad/resolve/*/weights.bin")
    assert len(attempts) == DEFAULT_RETRY.attempts  # the resyncs left it alone
    assert "attempt 2 at" in status_of(work, "bad").get("message")

    hub.faults.clear()
    assert c.call("POST", "/v1/reconcile")[0] == 202  # a person asks: the backoff is lifted

    wait_until(lambda: c.phase("bad") == "AVAILABLE", "the retried model to converge")


# --------------------------------------------------------------------------- checks and doors


def test_a_health_check_finds_silent_damage_and_the_next_pass_repairs_it(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    content = b"w" * 500_000
    hub.publish("org/a", {"config.json": CONFIG, "weights.bin": content})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a"}], controller=QUIET)
    c = controllers.start(work)
    wait_until(lambda: c.alive() and c.phase("a") == "AVAILABLE", "a to be available")
    stored = Path(
        hf_hub_download("org/a", "weights.bin", cache_dir=work.cache, local_files_only=True)
    ).resolve()
    before = stored.stat()
    with stored.open("r+b") as f:  # bit rot: same size, same inode, mtime put back
        f.seek(1000)
        f.write(b"X")
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))
    c.requested_pass()
    assert c.phase("a") == "AVAILABLE"  # unchanged size, mtime and inode: trusted unread

    work.write_manifest(
        [{"name": "a", "repo": "org/a"}], controller={**QUIET, "health_check_interval": "1s"}
    )

    def repaired() -> bool:
        try:
            return blob(work, "org/a", "weights.bin") == content
        except FileNotFoundError:
            # Damaged bytes leave the snapshot before the good copy arrives; the link can
            # also vanish between resolving it and reading it (LocalEntryNotFoundError is a
            # FileNotFoundError too).
            return False

    wait_until(repaired, "the damaged file to be re-fetched")
    wait_until(lambda: c.phase("a") == "AVAILABLE", "a to be available again")
    text = c.call("GET", "/metrics")[1].decode()
    failures = {
        tuple(s.labels.items()): s.value
        for f in text_string_to_metric_families(text)
        if f.name == "modelsync_verify_failures"
        for s in f.samples
    }
    assert failures[(("model", "a"),)] >= 1
    assert "health check: a: weights.bin" in c.logs()


def test_a_queued_request_reaches_the_running_controller_at_once(
    tmp_path: Path, hub: LocalHub, controllers: Controllers
) -> None:
    hub.publish("org/od", {"config.json": CONFIG, "weights.bin": b"o" * 100_000})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "od", "repo": "org/od", "policy": "on-demand"}], controller=QUIET)
    c = controllers.start(work)
    wait_until(lambda: c.alive() and c.passes() >= 1, "the first pass")
    assert c.phase("od") == "MISSING"

    # The resync is an hour away: only the nudge from the request can fetch it in time.
    run = work.reconcile("request", "od", "--wait", "--timeout", str(DEADLINE_S))

    assert run.code == 0, run.out + run.err
    assert blob(work, "org/od", "weights.bin") == b"o" * 100_000


def test_apply_reports_progress_in_plain_lines_when_not_on_a_terminal(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish("org/a", {"config.json": CONFIG, "weights.bin": b"p" * 400_000})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "a", "repo": "org/a"}])

    run = work.reconcile("--apply")

    assert run.code == 0, run.out + run.err
    lines = run.err.splitlines()
    assert "a: 0% of 400.0 kB (0/2 files)" in lines[0]
    assert lines[-1] == "a: 2 files, 400.0 kB on disk"
    assert "\x1b" not in run.err  # no bars, no cursor movement in a log

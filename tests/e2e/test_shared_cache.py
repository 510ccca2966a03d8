"""One cache shared by nodes whose ``flock`` does not reach each other (NFS, Lustre, GPFS).

Every process here runs through :mod:`tests.support.shared_node`: ``flock`` is a no-op in it
and its host name is the node given, so two processes on this machine behave as two nodes of a
cluster sharing a volume.  What keeps them apart is only the claim files
(:mod:`controller.system.claim_file`).  The claim timeout is set through
``MODELSYNC_CLAIM_TIMEOUT``; every wait polls with a deadline.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller.system.claim_file import TIMEOUT_ENV
from tests.support import shared_node
from tests.support.cli import DEADLINE_S, Workdir, wait_until
from tests.support.hub import LocalHub

MIB = 1024 * 1024
CONFIG = b'{"model_type": "shared"}\n'
QUIET = {
    "port": 0,
    "resync_interval": "1h",
    "update_check_interval": None,
    "health_check_interval": None,
}


def published_by(work: Workdir, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    """``controller.json`` once ``proc`` has published it; None before."""
    try:
        data: dict[str, Any] = json.loads((work.state / "controller.json").read_text())
    except (OSError, ValueError):
        return None
    return data if data["pid"] == proc.pid else None


def claim_record(work: Workdir) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((work.state / "controller.claim").read_text())
    return data


class Nodes:
    """The processes a test started, none of which may outlive it."""

    def __init__(self, work: Workdir, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, node: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.work.root / f"{node}-{len(self.procs)}.log"
        proc = shared_node.start(self.work, node, *args, log=log, env=self.env)
        self.procs.append((proc, log))
        return proc, log

    def controller(self, node: str) -> tuple[subprocess.Popen[bytes], Path, dict[str, Any] | None]:
        """``reconcile --watch`` on ``node``: it either publishes its address (returned) or
        exits (None)."""
        proc, log = self.start(node, "--watch")
        info = wait_until(
            lambda: published_by(self.work, proc) or proc.poll() is not None,
            "the controller to start or give up",
        )
        return proc, log, info if isinstance(info, dict) else None

    def kill_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/shared", {"model.safetensors": os.urandom(6 * MIB), "config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "shared", "repo": "org/shared"}], controller=QUIET)
    return work


def nodes_for(work: Workdir, timeout: float) -> Nodes:
    return Nodes(work, {TIMEOUT_ENV: str(timeout)})


def test_two_controllers_on_two_nodes_never_both_run(work: Workdir) -> None:
    nodes = nodes_for(work, timeout=2.0)
    try:
        first, _, info = nodes.controller("node-a")
        assert info is not None, "the first controller did not start"

        second, second_log, refused = nodes.controller("node-b")
        assert refused is None and second.wait(DEADLINE_S) != 0
        assert first.poll() is None  # refused while the holder runs, not after it died
        said = second_log.read_text()
        assert "already running" in said
        assert f"host node-a, pid {first.pid}, API at {info['url']}" in said

        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        # node-b cannot see node-a's pids: only the heartbeat going stale frees the claim.
        # Each refused attempt names the dead holder until then.
        attempts = 0

        def taken_over() -> tuple[subprocess.Popen[bytes], dict[str, Any]] | None:
            nonlocal attempts
            attempts += 1
            proc, log, info = nodes.controller("node-b")
            if info is None:
                assert proc.wait(DEADLINE_S) != 0
                assert f"host node-a, pid {first.pid}" in log.read_text()
                return None
            return proc, info

        third, third_info = wait_until(taken_over, "a controller on node-b to take over")
        record = claim_record(work)
        assert (record["host"], record["pid"], record["released"]) == ("node-b", third.pid, False)
        assert record["about"]["url"] == third_info["url"]
        assert record["generation"] == 2  # a takeover, not a second first claim
        assert third_info["host"] == "node-b"

        third.send_signal(signal.SIGTERM)
        assert third.wait(DEADLINE_S) == 0
        assert claim_record(work)["released"] is True
        assert not (work.state / "controller.json").exists()
        print(f"takeover after kill -9: {attempts} start(s) on node-b")
    finally:
        nodes.kill_all()


def test_a_dead_holder_on_the_same_node_is_replaced_at_once(work: Workdir) -> None:
    # An hour's timeout: only the holder's pid being gone can free the claim this fast.
    nodes = nodes_for(work, timeout=3600.0)
    try:
        first, _, info = nodes.controller("node-a")
        assert info is not None
        second, log, refused = nodes.controller("node-a")
        assert refused is None and second.wait(DEADLINE_S) != 0
        assert f"pid {first.pid}" in log.read_text()

        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        third, log, info = nodes.controller("node-a")
        assert info is not None, log.read_text()
        assert claim_record(work)["pid"] == third.pid
    finally:
        nodes.kill_all()


def test_two_applies_on_two_nodes_write_each_blob_once_and_whole(
    work: Workdir, hub: LocalHub
) -> None:
    nodes = nodes_for(work, timeout=2.0)
    hold = hub.faults.hold("*/model.safetensors", after_bytes=2 * MIB)
    try:
        first, first_log = nodes.start("node-a", "--apply", "-v")
        wait_until(hold.reached.is_set, "the first apply to receive bytes")
        second, second_log = nodes.start("node-b", "--apply", "-v")
        # With flock granted to both, only the partial's claim makes node-b wait.
        wait_until(
            lambda: (
                second.poll() is None
                and f"being downloaded by pid {first.pid} on node-a" in second_log.read_text()
            ),
            "the second apply to wait for the first writer",
        )
        hold.release()
        assert first.wait(DEADLINE_S) == 0, first_log.read_text()
        assert second.wait(DEADLINE_S) == 0, second_log.read_text()
    finally:
        hold.release()
        nodes.kill_all()

    assert len(hub.requests_for("*/model.safetensors", "GET")) == 1  # fetched once, not twice
    assert_whole(work, "org/shared")
    assert work.model_status("shared")["phase"] == "AVAILABLE"


def test_a_killed_writer_on_another_node_is_taken_over_once_stale(
    work: Workdir, hub: LocalHub
) -> None:
    nodes = nodes_for(work, timeout=2.0)
    hold = hub.faults.hold("*/model.safetensors", after_bytes=2 * MIB)
    try:
        first, _ = nodes.start("node-a", "--apply", "-v")
        wait_until(hold.reached.is_set, "the first apply to receive bytes")
        second, second_log = nodes.start("node-b", "--apply", "-v")
        wait_until(
            lambda: f"being downloaded by pid {first.pid}" in second_log.read_text(),
            "the second apply to wait for the first writer",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        hold.release()
        # node-b resumes the partial node-a left once node-a's heartbeat is stale.
        assert second.wait(DEADLINE_S) == 0, second_log.read_text()
    finally:
        hold.release()
        nodes.kill_all()

    assert_whole(work, "org/shared")
    assert work.model_status("shared")["phase"] == "AVAILABLE"


def assert_whole(work: Workdir, repo: str) -> None:
    """Every blob hashes to its name, every snapshot entry reaches one, no partial is left."""
    folder = work.cache / f"models--{repo.replace('/', '--')}"
    blobs = sorted((folder / "blobs").iterdir())
    assert blobs and not [b.name for b in blobs if b.name.endswith((".incomplete", ".json"))]
    for blob in blobs:
        data = blob.read_bytes()
        if len(blob.name) == 64:  # an LFS file: named by its sha256
            assert hashlib.sha256(data).hexdigest() == blob.name, blob
        else:  # a small file: named by its git blob id
            assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob.name, blob
    entries = [p for p in (folder / "snapshots").rglob("*") if p.is_symlink()]
    assert entries and all(p.resolve().parent == folder / "blobs" for p in entries)

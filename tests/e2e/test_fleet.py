"""A fleet on one machine: an upstream hub, one pull-through mirror and six node controllers.

The upstream is a :class:`~tests.support.hub.LocalHub` (its request log counts the bytes it
sends, its faults hold, corrupt and gate); the mirror is a real ``reconcile serve --upstream``
process; each node is a real ``reconcile --watch`` process with its own cache, state, status
file and HTTP API, whose manifests point ``endpoint:`` at the mirror.  The fleet is started
once for the module and each test declares its own model on every node (a manifest file of
its own, which the controllers pick up by watching their manifest directory), so the tests
share the start-up cost and still depend on nothing another test did.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import REPO_ROOT, Workdir, reconcile, wait_until
from tests.support.hub import LocalHub, safetensors_bytes

NODES = 6
MiB = 1024 * 1024
API_TOKEN = "fleet-api-token"
MIRROR_TOKEN = "hf_mirrorfleettoken0123456789abcdef"
NODE_TOKEN = "hf_nodefleettoken0123456789abcdefgh"
WITH_TOKEN = range(3)  # nodes 0-2 hold a hub token; nodes 3-5 have none
# A failing model is retried within a second or two, not the default half minute.
CONTROLLER = {
    "port": 0,
    "resync_interval": "1h",
    "update_check_interval": None,
    "retry_backoff": "500ms",
    "retry_backoff_max": "2s",
}
DEADLINE_S = 120.0  # six controllers and a mirror on a shared, loaded machine


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _model_files(seed: int, size: int) -> dict[str, bytes]:
    weights = bytes((seed + i) % 251 for i in range(256)) * (size // 256)
    return {
        "config.json": json.dumps({"model_type": f"fleet-{seed}"}).encode(),
        "model.safetensors": safetensors_bytes(weights),
    }


# Small models: what is under test is who fetches what, not throughput.
FILES = {
    "base": _model_files(1, 2 * MiB),
    "restart": _model_files(2, 2 * MiB),
    "corrupt": _model_files(3, MiB),
    "gated": _model_files(4, 256 * 1024),
}


def _terminate(process: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, and SIGKILL for a process that has not ended within 30 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class MirrorProcess:
    """``reconcile serve DIR --upstream URL`` as a process, restartable on the same port."""

    def __init__(self, root: Path, upstream: str, log: Path) -> None:
        self.root, self.upstream, self.log = root, upstream, log
        root.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "controller", "serve", str(self.root)]
        command += ["--port", str(self.port), "--upstream", self.upstream]
        env = {**os.environ, "HF_TOKEN": MIRROR_TOKEN, "PYTHONPATH": str(REPO_ROOT)}
        with self.log.open("a") as errors:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
            )
        assert self.process.stdout is not None
        banner = self.process.stdout.readline().strip()
        assert banner.startswith("Serving "), banner + self.log.read_text()
        self.url = banner.split(" at ", 1)[1].split(" ", 1)[0]
        self.port = int(self.url.rsplit(":", 1)[1])

    def metric(self, name: str) -> float:
        exposition = httpx2.get(self.url + "/metrics", timeout=30).text
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        raise AssertionError(f"the mirror exports no {name}")

    def kill(self) -> None:
        """SIGKILL: no chance to finish a fill, close a file or say goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        _terminate(self.process)


@dataclass
class Node:
    name: str
    work: Workdir
    token: str | None
    process: subprocess.Popen[bytes] | None = None
    api: str = ""

    @property
    def log(self) -> Path:
        return self.work.root / "controller.log"

    def start(self) -> None:
        env = {"MODELSYNC_API_TOKEN": API_TOKEN, "MODELSYNC_NODE_NAME": self.name}
        if self.token is not None:
            # The tests' environment forbids implicit tokens; a node with one uses it.
            env |= {"HF_TOKEN": self.token, "HF_HUB_DISABLE_IMPLICIT_TOKEN": ""}
        self.process = self.work.start("--watch", env=env, log=self.log)

    def published_api(self) -> str | None:
        """The API address in ``controller.json``, once this process has written it."""
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            info = json.loads((self.work.state / "controller.json").read_text())
        except (OSError, ValueError):
            return None
        return str(info["url"]) if info["pid"] == self.process.pid else None

    def declare(self, manifest: str, models: list[dict[str, Any]]) -> None:
        """Write one manifest file atomically, as an editor or a ConfigMap swap would."""
        path = self.work.write_manifest(models, name=f".{manifest}.tmp", controller=CONTROLLER)
        path.rename(self.work.manifests / f"{manifest}.yaml")

    def model(self, name: str) -> dict[str, Any] | None:
        """The model's entry in the status file, or None before a pass reported it."""
        try:
            status = yaml.safe_load(self.work.status_file.read_text())
        except (OSError, yaml.YAMLError):
            return None  # not written yet (the write itself is atomic)
        found = [m for m in (status or {}).get("models", []) if m["name"] == name]
        return found[0] if found else None

    def phase(self, name: str) -> str | None:
        entry = self.model(name)
        return None if entry is None else str(entry["phase"])

    def snapshot_file(self, repo: str, path: str) -> bytes:
        folder = self.work.cache / ("models--" + repo.replace("/", "--"))
        commit = (folder / "refs" / "main").read_text().strip()
        return (folder / "snapshots" / commit / path).read_bytes()

    def stop(self) -> None:
        _terminate(self.process)


def await_phase(nodes: list[Node], name: str, phase: str) -> None:
    """Wait until every one of ``nodes`` reports ``name`` in ``phase``; on a timeout, say
    where each node was."""
    try:
        wait_until(lambda: all(n.phase(name) == phase for n in nodes), "", DEADLINE_S)
    except AssertionError:
        where = ", ".join(f"{n.name}: {n.phase(name)}" for n in nodes)
        raise AssertionError(f"gave up waiting for {name} {phase} ({where})") from None


def _partial_bytes(node: Node, repo: str) -> int:
    """Bytes of the partial downloads in ``node``'s cache for ``repo``."""
    blobs = node.work.cache / ("models--" + repo.replace("/", "--")) / "blobs"
    total = 0
    for partial in blobs.glob("*.incomplete"):
        with contextlib.suppress(FileNotFoundError):  # completed since the listing
            total += partial.stat().st_size
    return total


def _snapshot_holds(node: Node, repo: str, path: str) -> bool:
    folder = node.work.cache / ("models--" + repo.replace("/", "--")) / "snapshots"
    return any(folder.glob(f"*/{path}"))


@dataclass
class Fleet:
    hub: LocalHub
    mirror: MirrorProcess
    nodes: list[Node]
    joined_at_start: float  # requests that joined the mirror's fills while the six started

    def declare(self, manifest: str, name: str, repo: str) -> None:
        for node in self.nodes:
            node.declare(manifest, [{"name": name, "repo": repo}])

    def converge(self, name: str, nodes: list[Node] | None = None) -> None:
        await_phase(self.nodes if nodes is None else nodes, name, "AVAILABLE")

    def assert_files(self, repo: str, files: Mapping[str, bytes]) -> None:
        for node in self.nodes:
            for path, data in files.items():
                assert _sha256(node.snapshot_file(repo, path)) == _sha256(data), (node.name, path)

    def upstream_body_bytes(self, repo: str) -> int:
        """Body bytes the upstream sent for ``repo``'s files (file GETs, any status)."""
        return sum(r.bytes_sent for r in self.hub.requests_for(f"/{repo}/resolve/*", "GET"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    with LocalHub(root / "upstream") as hub:
        hub.publish("fleet/base", FILES["base"])
        mirror = MirrorProcess(root / "mirror", hub.url, root / "mirror.log")
        nodes: list[Node] = []
        try:
            mirror.start()
            for i in range(NODES):
                node = Node(
                    f"gpu-{i}",
                    Workdir(root / f"node{i}", mirror.url),
                    NODE_TOKEN if i in WITH_TOKEN else None,
                )
                node.declare("base", [{"name": "base", "repo": "fleet/base"}])
                nodes.append(node)
            # The upstream holds the weights half-way until all six nodes asked for them, so
            # their requests overlap however slowly each process starts.
            held = hub.faults.hold("*/fleet/base/resolve/*/model.safetensors", after_bytes=MiB)
            for node in nodes:
                node.start()
            for node in nodes:
                node.api = wait_until(node.published_api, f"{node.name} to publish its API")
            wait_until(
                lambda: all(
                    _partial_bytes(n, "fleet/base") >= MiB // 2 or n.phase("base") == "AVAILABLE"
                    for n in nodes
                ),
                "every node to be fetching the weights",
                DEADLINE_S,
            )
            joined = mirror.metric("modelsync_mirror_coalesced_requests_total")
            held.release()
            yield Fleet(hub, mirror, nodes, joined)
        finally:
            for node in nodes:
                node.stop()
            mirror.stop()


def test_six_nodes_converge_and_the_upstream_sends_each_byte_about_once(fleet: Fleet) -> None:
    fleet.converge("base")
    fleet.assert_files("fleet/base", FILES["base"])
    # The other five nodes' requests joined the first one's fill.
    assert fleet.joined_at_start >= NODES - 1
    size = sum(len(data) for data in FILES["base"].values())
    sent = fleet.upstream_body_bytes("fleet/base")
    assert size <= sent <= 1.05 * size, (sent, size)

    run = reconcile(
        "status",
        *(arg for node in fleet.nodes for arg in ("--from", node.api)),
        "--json",
        env={"MODELSYNC_API_TOKEN": API_TOKEN},
    )
    assert run.code == 0, run.out + run.err
    view = run.json()
    assert [n["node"] for n in view["nodes"]] == [n.name for n in fleet.nodes]
    assert all(n["models"]["base"]["phase"] == "AVAILABLE" for n in view["nodes"])
    assert "base" in view["summary"]["available_everywhere"]
    assert view["summary"]["unreachable"] == []


def test_the_mirror_killed_mid_transfer_and_restarted_every_node_converges(
    fleet: Fleet,
) -> None:
    fleet.hub.publish("fleet/restart", FILES["restart"])
    held = fleet.hub.faults.hold("*/fleet/restart/resolve/*/model.safetensors", after_bytes=MiB)
    fleet.declare("restart", "restart", "fleet/restart")
    # An application's init container on the first node waits through the outage.
    first = fleet.nodes[0]
    waiting = first.work.start(
        "wait", "restart", "--timeout", str(DEADLINE_S), log=first.work.root / "wait.log"
    )
    assert held.reached.wait(DEADLINE_S), "the mirror never started its fill"
    # Every node holds part of the file, served from the mirror's half-filled copy.
    wait_until(
        lambda: all(_partial_bytes(n, "fleet/restart") >= MiB // 2 for n in fleet.nodes),
        "every node part-way through the file",
        DEADLINE_S,
    )
    fleet.mirror.kill()
    held.release()
    fleet.mirror.start()

    try:
        assert waiting.wait(DEADLINE_S) == 0, (first.work.root / "wait.log").read_text()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    fleet.converge("restart")
    fleet.assert_files("fleet/restart", FILES["restart"])
    # The restarted mirror resumed its own partial file rather than starting over.
    gets = fleet.hub.requests_for("*/fleet/restart/resolve/*/model.safetensors", "GET")
    assert [r.status for r in gets] == [200, 206], gets
    assert gets[1].range is not None and gets[1].range.startswith("bytes="), gets
    assert int(gets[1].range[len("bytes=") :].split("-")[0]) > 0, gets


def test_a_corrupt_upstream_body_is_available_on_no_node_until_fixed(fleet: Fleet) -> None:
    fleet.hub.publish("fleet/corrupt", FILES["corrupt"])
    target = "*/fleet/corrupt/resolve/*/model.safetensors"
    fleet.hub.faults.corrupt(target, offset=MiB // 2, times=None)
    fleet.declare("corrupt", "corrupt", "fleet/corrupt")

    told_why: set[str] = set()

    def failed_on_every_node_saying_why() -> bool:
        # Each node keeps retrying, so its phase goes FAILED, DOWNLOADING, FAILED...: what
        # matters is that each one failed, saying why (the mirror, once it has given up on
        # the file, answers with the reason rather than cutting the body), and that none ever
        # reported the model good.
        entries = {n.name: n.model("corrupt") or {} for n in fleet.nodes}
        assert all(e.get("phase") != "AVAILABLE" for e in entries.values()), entries
        told_why.update(
            name
            for name, entry in entries.items()
            if entry.get("phase") == "FAILED" and "fail their sha256" in entry["message"]
        )
        return len(told_why) == NODES

    wait_until(
        failed_on_every_node_saying_why,
        "every node to report the corrupt model FAILED, with the reason",
        DEADLINE_S,
    )
    for node in fleet.nodes:
        assert not _snapshot_holds(node, "fleet/corrupt", "model.safetensors"), node.name

    fleet.hub.faults.clear()
    fleet.converge("corrupt")
    fleet.assert_files("fleet/corrupt", FILES["corrupt"])


def test_a_gated_repo_needs_the_nodes_own_token_through_the_mirror(fleet: Fleet) -> None:
    fleet.hub.publish("fleet/gated", FILES["gated"], gated=True)
    fleet.hub.accept_token("fleet/gated", MIRROR_TOKEN)
    fleet.hub.accept_token("fleet/gated", NODE_TOKEN)
    fleet.declare("gated", "gated", "fleet/gated")

    with_token = [n for n in fleet.nodes if n.token is not None]
    without = [n for n in fleet.nodes if n.token is None]
    fleet.converge("gated", with_token)
    for node in with_token:
        for path, data in FILES["gated"].items():
            assert _sha256(node.snapshot_file("fleet/gated", path)) == _sha256(data)
    await_phase(without, "gated", "FAILED")
    for node in without:
        entry = node.model("gated")
        assert entry is not None
        message = str(entry["message"])
        assert "gated" in message or "access" in message, message
        # Where access is granted: the upstream hub's page for the repo, not the mirror's.
        assert f"request access at {fleet.hub.url}/fleet/gated," in message, message
        assert fleet.mirror.url not in message, message
        assert "Traceback" not in message
        assert not _snapshot_holds(node, "fleet/gated", "model.safetensors"), node.name
    for node in fleet.nodes:
        text = node.log.read_text() + node.work.status_file.read_text()
        assert NODE_TOKEN not in text and MIRROR_TOKEN not in text

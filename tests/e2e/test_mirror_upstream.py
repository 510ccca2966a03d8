"""``reconcile serve DIR --upstream URL``: a pull-through mirror in front of a real local hub.

The upstream is a :class:`~tests.support.hub.LocalHub` (with its request log and faults); the
mirror is the real server with a :class:`~controller.mirror.pull_through.PullThrough`, and
one test runs it as the real ``reconcile serve`` process.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import GatedRepoError
from prometheus_client.parser import text_string_to_metric_families

from controller.mirror.pull_through import PullThrough
from controller.mirror.server import HubServer
from controller.mirror.upstream import Upstream
from tests.support.cli import REPO_ROOT, Workdir, wait_until
from tests.support.hub import LocalHub

REPO = "acme/mirrored"
MiB = 1024 * 1024
BIG = bytes(range(256)) * (3 * MiB // 256)  # three progress reports' worth, so it streams


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Mirror:
    """An in-process pull-through mirror over ``root`` in front of ``upstream``."""

    def __init__(self, root: Path, upstream: str, **options: object) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.pull = PullThrough(root, Upstream(upstream, "hf_mirrortoken1234"), **options)  # type: ignore[arg-type]
        self.server = HubServer(root, pull_through=self.pull).start()
        self.url = self.server.url

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx2.Response:
        return httpx2.get(self.url + path, headers=headers, timeout=30)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def mirror(tmp_path: Path, hub: LocalHub) -> Iterator[Mirror]:
    served = Mirror(tmp_path / "mirror", hub.url)
    yield served
    served.stop()


def _metrics(text: str) -> dict[str, float]:
    """Each sample of a Prometheus exposition, by name and labels as written."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


def _body_gets(hub: LocalHub, name: str) -> list[object]:
    return [r for r in hub.requests_for(f"*/resolve/*/{name}", "GET") if r.status in (200, 206)]


def test_a_client_downloads_through_the_mirror_and_a_second_costs_the_hub_nothing(
    tmp_path: Path, hub: LocalHub, mirror: Mirror
) -> None:
    files = {"config.json": b'{"a": 1}', "weights/model.safetensors": BIG}
    commit = hub.publish(REPO, files)
    first = snapshot_download(REPO, cache_dir=tmp_path / "node1", endpoint=mirror.url)
    assert (Path(first) / "weights/model.safetensors").read_bytes() == BIG
    assert len(_body_gets(hub, "weights/model.safetensors")) == 1
    # The mirror's directory is a normal cache: blob, snapshot link and the branch's ref.
    folder = mirror.root / "models--acme--mirrored"
    assert (folder / "refs" / "main").read_text() == commit
    assert (folder / "snapshots" / commit / "config.json").read_bytes() == b'{"a": 1}'

    second = snapshot_download(REPO, cache_dir=tmp_path / "node2", endpoint=mirror.url)
    assert (Path(second) / "weights/model.safetensors").read_bytes() == BIG
    assert len(_body_gets(hub, "weights/model.safetensors")) == 1
    assert len(_body_gets(hub, "config.json")) == 1


def test_concurrent_clients_cost_the_hub_one_download(hub: LocalHub, mirror: Mirror) -> None:
    hub.publish(REPO, {"big.bin": BIG})
    held = hub.faults.hold("*/big.bin", after_bytes=2 * MiB)
    path = f"/{REPO}/resolve/main/big.bin"
    bodies: dict[int, bytes] = {}

    def download(index: int) -> None:
        bodies[index] = mirror.get(path).content

    clients = [threading.Thread(target=download, args=(i,)) for i in range(6)]
    for client in clients:
        client.start()
    wait_until(lambda: mirror.pull.metrics.coalesced >= 5, "five clients joining the fill")
    held.reached.wait(30)
    # A range already written is served while the upstream is held; one past it waits.
    early = mirror.get(path, {"Range": "bytes=0-1023"})
    assert early.status_code == 206 and early.content == BIG[:1024]
    late: dict[str, bytes] = {}
    tail = threading.Thread(
        target=lambda: late.update(body=mirror.get(path, {"Range": "bytes=-1000"}).content)
    )
    tail.start()
    wait_until(lambda: mirror.pull.metrics.coalesced >= 7, "the last range waiting on the fill")
    assert not late
    held.release()
    for client in [*clients, tail]:
        client.join(60)
    assert all(_sha256(bodies[i]) == _sha256(BIG) for i in range(6))
    assert late["body"] == BIG[-1000:]
    assert len(_body_gets(hub, "big.bin")) == 1
    metrics = _metrics(mirror.get("/metrics").text)
    assert metrics["modelsync_mirror_coalesced_requests_total"] == 7
    assert metrics["modelsync_mirror_fills_total"] == 1
    assert metrics["modelsync_mirror_upstream_bytes_total"] == len(BIG)
    assert metrics['modelsync_mirror_served_bytes_total{source="upstream"}'] >= 6 * len(BIG)


def test_a_corrupt_upstream_body_is_never_served_whole_and_is_fetched_again(
    hub: LocalHub, mirror: Mirror
) -> None:
    hub.publish(REPO, {"big.bin": BIG})
    hub.faults.corrupt("*/big.bin", offset=100, times=1)
    parts = urlsplit(mirror.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    connection.request("GET", f"/{REPO}/resolve/main/big.bin")
    response = connection.getresponse()
    try:
        received = response.read()
    except http.client.IncompleteRead as short:
        received = short.partial
    connection.close()
    # Either the client was cut short, or what it got in full is the right file.
    assert len(received) < len(BIG) or _sha256(received) == _sha256(BIG)
    again = mirror.get(f"/{REPO}/resolve/main/big.bin")
    assert _sha256(again.content) == _sha256(BIG)
    assert len(_body_gets(hub, "big.bin")) == 2
    quarantined = mirror.root / "models--acme--mirrored" / ".quarantine" / _sha256(BIG)
    assert quarantined.is_file() and _sha256(quarantined.read_bytes()) != _sha256(BIG)
    assert (mirror.root / "models--acme--mirrored" / "blobs" / _sha256(BIG)).read_bytes() == BIG


def _get_to_the_end(url: str) -> tuple[int, dict[str, str], bytes]:
    """A GET read to its end, or to where the server cut it: (status, headers, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        try:
            body = response.read()
        except http.client.IncompleteRead as short:
            body = short.partial
        return response.status, dict(response.getheaders()), body
    finally:
        connection.close()


def test_a_file_the_upstream_keeps_corrupting_is_refused_with_the_reason_for_a_while(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish(REPO, {"big.bin": BIG})
    hub.faults.corrupt("*/big.bin", offset=100, times=None)
    served = Mirror(tmp_path / "mirror", hub.url, gave_up_ttl=5.0)
    url = f"{served.url}/{REPO}/resolve/main/big.bin"
    try:
        # Clients part-way through a bad body are cut; once the mirror has given up on the
        # file, the next request is told why in the hub's format.
        answers = []

        def refused() -> bool:
            answers.append(_get_to_the_end(url))
            status, _, body = answers[-1]
            assert status != 200 or len(body) < len(BIG), "a whole bad body went out"
            return status == 502

        wait_until(refused, "the mirror to give up on the corrupt file", 60)
        status, headers, body = answers[-1]
        assert headers["X-Error-Code"] == "UpstreamBadBytes"
        assert "fail their sha256" in headers["X-Error-Message"], headers
        assert "fetches it again in" in headers["X-Error-Message"], headers
        assert served.get(f"/{REPO}/resolve/main/big.bin").status_code == 502
        assert httpx2.head(url, timeout=30).status_code == 502
        assert len(_body_gets(hub, "big.bin")) == 3  # the refusal costs the upstream nothing

        # Once the upstream is mended and the while is over, the file is fetched again.
        hub.faults.clear()
        wait_until(lambda: _get_to_the_end(url)[0] == 200, "the file to be fetched again", 60)
        assert _sha256(served.get(f"/{REPO}/resolve/main/big.bin").content) == _sha256(BIG)
    finally:
        served.stop()


def test_while_the_upstream_is_down_cached_commits_and_known_branches_are_served(
    tmp_path: Path, hub: LocalHub
) -> None:
    commit = hub.publish(REPO, {"config.json": b"{}", "model.safetensors": BIG})
    served = Mirror(tmp_path / "mirror", hub.url, revision_ttl=0.0)
    try:
        snapshot_download(REPO, cache_dir=tmp_path / "warm", endpoint=served.url)
        hub.server.stop()
        by_branch = snapshot_download(REPO, cache_dir=tmp_path / "node1", endpoint=served.url)
        assert Path(by_branch).name == commit
        assert (Path(by_branch) / "model.safetensors").read_bytes() == BIG
        by_commit = snapshot_download(
            REPO, revision=commit, cache_dir=tmp_path / "node2", endpoint=served.url
        )
        assert (Path(by_commit) / "config.json").read_bytes() == b"{}"
        unknown = served.get(f"/api/models/{REPO}/revision/never-asked")
        assert unknown.status_code == 404
        assert served.pull.metrics.upstream_errors > 0
    finally:
        served.stop()


def test_while_the_upstream_is_down_a_commit_held_in_part_is_still_listed_whole(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish(REPO, {"config.json": b"{}", "model.safetensors": BIG})
    served = Mirror(tmp_path / "mirror", hub.url, revision_ttl=0.0)
    try:
        hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "first", endpoint=served.url)
        # The upstream fails on its side for every question about revisions, not for files.
        hub.faults.fail("/api/models/*", 503, times=None)
        listed = served.get(f"/api/models/{REPO}/revision/main?blobs=true")
        assert listed.status_code == 200, listed.text
        # DIR holds only config.json: listing just that would tell a node the model is whole.
        siblings = sorted(s["rfilename"] for s in listed.json()["siblings"])
        assert siblings == ["config.json", "model.safetensors"]
        folder = snapshot_download(REPO, cache_dir=tmp_path / "node", endpoint=served.url)
        assert (Path(folder) / "model.safetensors").read_bytes() == BIG
        assert served.pull.metrics.upstream_errors > 0
    finally:
        served.stop()


def test_healthz_is_ok_while_serving_and_says_whether_the_upstream_answers(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish(REPO, {"config.json": b"{}"})
    with HubServer(tmp_path / "read-only") as read_only:
        plain = httpx2.get(read_only.url + "/healthz", timeout=30)
    assert (plain.status_code, plain.json()) == (200, {"status": "serving"})

    served = Mirror(tmp_path / "mirror", hub.url, revision_ttl=0.0)
    try:
        assert served.get("/healthz").json()["upstream"]["reachable"] is None  # not asked yet
        assert served.get(f"/{REPO}/resolve/main/config.json").content == b"{}"
        up = served.get("/healthz")
        assert up.status_code == 200
        assert up.json()["upstream"] | {"last_answer_seconds_ago": 0} == {
            "url": hub.url,
            "reachable": True,
            "last_answer_seconds_ago": 0,
            "last_error_seconds_ago": None,
            "last_error": None,
        }
        upstream_url = hub.url
        hub.server.stop()
        # Still serving what it holds, so still healthy; the body says the upstream is not.
        assert served.get(f"/{REPO}/resolve/main/config.json").content == b"{}"
        down = served.get("/healthz")
        assert down.status_code == 200 and down.json()["status"] == "serving"
        upstream = down.json()["upstream"]
        assert upstream["reachable"] is False
        assert upstream_url in upstream["last_error"] and upstream["last_error_seconds_ago"] >= 0
        assert "hf_mirrortoken1234" not in down.text
        assert httpx2.head(served.url + "/healthz", timeout=30).status_code == 200
    finally:
        served.stop()


def test_a_gated_repo_is_served_only_to_tokens_the_upstream_accepts(
    tmp_path: Path, hub: LocalHub, mirror: Mirror
) -> None:
    hub.publish(REPO, {"config.json": b"{}"}, gated=True)
    hub.accept_token(REPO, "hf_mirrortoken1234")
    hub.accept_token(REPO, "hf_allowednode5678")
    with pytest.raises(GatedRepoError) as refused:
        hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "anon", endpoint=mirror.url)
    # Access is asked for where it is granted: the upstream's page, not the mirror's.
    assert f"Request access at {hub.url}/{REPO}" in (refused.value.server_message or "")
    with pytest.raises(GatedRepoError):
        hf_hub_download(
            REPO,
            "config.json",
            cache_dir=tmp_path / "other",
            endpoint=mirror.url,
            token="hf_notallowed0000",
        )
    allowed = hf_hub_download(
        REPO,
        "config.json",
        cache_dir=tmp_path / "allowed",
        endpoint=mirror.url,
        token="hf_allowednode5678",
    )
    assert Path(allowed).read_bytes() == b"{}"
    # Now cached in the mirror, the repo is still refused to a client without a token.
    anonymous = mirror.get(f"/{REPO}/resolve/main/config.json")
    assert anonymous.status_code == 401
    assert anonymous.headers["X-Error-Code"] == "GatedRepo"


def test_the_budget_evicts_the_least_recently_served_file(tmp_path: Path, hub: LocalHub) -> None:
    size = MiB
    files = {name: bytes([i]) * size for i, name in enumerate(("a.bin", "b.bin", "c.bin"))}
    hub.publish(REPO, files)
    served = Mirror(tmp_path / "mirror", hub.url, max_bytes=2 * size + size // 2)
    try:
        for name in ("a.bin", "b.bin", "a.bin", "c.bin"):
            assert served.get(f"/{REPO}/resolve/main/{name}").content == files[name]
        blobs = served.root / "models--acme--mirrored" / "blobs"
        held = {p.read_bytes()[:1] for p in blobs.iterdir() if "." not in p.name}
        assert held == {b"\x00", b"\x02"}  # b.bin was served least recently
        assert served.pull.metrics.evictions == 1
        assert served.get(f"/{REPO}/resolve/main/b.bin").content == files["b.bin"]
    finally:
        served.stop()


def test_reconcile_serve_upstream_as_a_process(tmp_path: Path, hub: LocalHub) -> None:
    hub.publish(REPO, {"config.json": b"{}", "model.safetensors": BIG}, gated=True)
    token = "hf_mirrorprocesstoken99"
    hub.accept_token(REPO, token)
    hub.accept_token(REPO, "hf_nodetoken12345")
    root = tmp_path / "mirror"
    root.mkdir()
    env = {**os.environ, "HF_TOKEN": token, "PYTHONPATH": str(REPO_ROOT)}
    command = ["-m", "controller", "serve", str(root), "--port", "0", "--upstream", hub.url, "-v"]
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        url = banner.split(" at ", 1)[1].split(" ", 1)[0]
        folder = snapshot_download(
            REPO, cache_dir=tmp_path / "node", endpoint=url, token="hf_nodetoken12345"
        )
        assert (Path(folder) / "model.safetensors").read_bytes() == BIG
        assert _metrics(httpx2.get(url + "/metrics").text)["modelsync_mirror_fills_total"] == 2
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0
        assert token not in out + err and "hf_nodetoken12345" not in out + err
    finally:
        process.kill()
        process.wait()


def _serve(root: Path, upstream: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    """``reconcile serve DIR --upstream URL`` as a process, and the URL it serves at."""
    command = [sys.executable, "-m", "controller", "serve", str(root), "--port", "0"]
    env = {**os.environ, "HF_TOKEN": "hf_mirrortoken1234", "PYTHONPATH": str(REPO_ROOT)}
    with log.open("a") as errors:
        process = subprocess.Popen(
            [*command, "--upstream", upstream],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    assert process.stdout is not None
    banner = process.stdout.readline().strip()
    assert banner.startswith("Serving "), banner + log.read_text()
    return process, banner.split(" at ", 1)[1].split(" ", 1)[0]


def test_a_restarted_mirror_lists_a_commit_it_holds_in_part_whole_while_the_upstream_is_down(
    tmp_path: Path, hub: LocalHub
) -> None:
    commit = hub.publish(REPO, {"config.json": b"{}", "model.safetensors": BIG})
    hub.faults.fail("*/resolve/*/model.safetensors", 503, times=None)
    root, log, upstream = tmp_path / "mirror", tmp_path / "mirror.log", hub.url
    root.mkdir()
    first, url = _serve(root, upstream, log)
    try:
        hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "first", endpoint=url)
        # The weights' fill fails upstream: the client's connection is closed mid-answer.
        with pytest.raises(httpx2.TransportError):
            httpx2.get(f"{url}/{REPO}/resolve/main/model.safetensors", timeout=30)
    finally:
        first.kill()  # no goodbye: whatever it kept, it kept before now
        first.wait()
    hub.server.stop()

    second, url = _serve(root, upstream, log)
    try:
        for revision in ("main", commit):
            listed = httpx2.get(f"{url}/api/models/{REPO}/revision/{revision}", timeout=30)
            assert listed.status_code == 200, listed.text
            siblings = sorted(s["rfilename"] for s in listed.json()["siblings"])
            assert siblings == ["config.json", "model.safetensors"]
        with pytest.raises(Exception):  # noqa: B017 -- any failure, as long as it is not success
            snapshot_download(REPO, cache_dir=tmp_path / "node", endpoint=url, etag_timeout=5)
        assert not list((tmp_path / "node").glob("**/model.safetensors"))

        # A node's controller plans the weights too (its apply would retry them, not end).
        work = Workdir(tmp_path / "plan", url)
        work.write_manifest([{"name": "partial", "repo": REPO}])
        run = work.reconcile("--plan", "--json")
        assert run.code == 0, run.out + run.err
        (action,) = run.json()["actions"]
        paths = sorted(f["path"] for f in action["files"])
        assert paths == ["config.json", "model.safetensors"]
        assert "hf_mirrortoken1234" not in log.read_text()
    finally:
        second.kill()
        second.wait()

"""examples/kubernetes, rendered by ``kubectl kustomize`` as a cluster would get it, agrees
with the CLI and the schema: its manifests load, every container that runs ``reconcile``
parses with the real parser, the probes are routes of the API, the mounts and ports line up."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from controller.api.app import create_app
from controller.api.listener import ApiListener
from controller.cli.main import build_parser, usage_problem
from controller.manifest.desired import to_desired
from controller.manifest.loading import load_manifests
from controller.mirror.pull_through import PullThrough
from controller.mirror.server import HubServer
from controller.mirror.upstream import Upstream
from tests.support.cli import REPO_ROOT
from tests.support.standing_controller import StandingController

EXAMPLE = REPO_ROOT / "examples" / "kubernetes"
IMAGE = re.compile(r"^modelsync(:|$)")  # the image whose entrypoint is `reconcile`

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl is not installed: nothing renders the base"
)

Object = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], Object]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(EXAMPLE)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out.stdout)}


def pod(obj: Object) -> Object:
    spec: Object = obj["spec"]["template"]["spec"]
    return spec


def containers(rendered: dict[tuple[str, str], Object]) -> list[tuple[str, Object]]:
    return [
        (f"{kind}/{name}/{c['name']}", c)
        for (kind, name), obj in rendered.items()
        if kind in ("Deployment", "StatefulSet", "DaemonSet")
        for c in (*pod(obj).get("initContainers", ()), *pod(obj)["containers"])
    ]


def host_path(obj: Object, container: Object, mount_path: str) -> tuple[str, bool]:
    """The host path mounted at ``mount_path`` in ``container``, and whether read-only."""
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == mount_path)
    volume = next(v for v in pod(obj)["volumes"] if v["name"] == mount["name"])
    return volume["hostPath"]["path"], bool(mount.get("readOnly"))


def test_the_base_has_every_part(rendered: dict[tuple[str, str], Object]) -> None:
    assert {
        ("StatefulSet", "modelsync-mirror"),
        ("Service", "modelsync-mirror"),
        ("DaemonSet", "modelsync"),
        ("ConfigMap", "modelsync-manifests"),
        ("PodMonitor", "modelsync"),
        ("PodMonitor", "modelsync-mirror"),
        ("PrometheusRule", "modelsync"),
        ("Deployment", "sample-app"),
        ("ConfigMap", "modelsync-grafana-dashboard"),
    } <= set(rendered)
    assert rendered[("StatefulSet", "modelsync-mirror")]["spec"]["volumeClaimTemplates"]
    assert all(
        o["metadata"].get("namespace") == "modelsync"
        for o in rendered.values()
        if o["kind"] != "Namespace"
    )


def test_the_manifests_load_and_point_at_the_mirror(
    rendered: dict[tuple[str, str], Object], tmp_path: Path
) -> None:
    data = rendered[("ConfigMap", "modelsync-manifests")]["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    desired = to_desired(load_manifests(tmp_path))  # the project's own loader: raises if invalid
    service = rendered[("Service", "modelsync-mirror")]
    port = service["spec"]["ports"][0]["port"]
    assert desired.endpoint == f"http://modelsync-mirror.modelsync.svc.cluster.local:{port}"
    mirror = pod(rendered[("StatefulSet", "modelsync-mirror")])["containers"][0]
    assert {"name": "hub", "containerPort": port} in mirror["ports"]
    app_wait = pod(rendered[("Deployment", "sample-app")])["initContainers"][0]["args"]
    assert app_wait[0] == "wait" and set(app_wait[1:2]) <= {m.name for m in desired.models}


def test_every_reconcile_command_parses_with_the_cli(
    rendered: dict[tuple[str, str], Object],
) -> None:
    parser = build_parser()
    checked = []
    for where, container in containers(rendered):
        if not IMAGE.match(container["image"]) or "command" in container:
            continue  # not `reconcile` (another image, or the entrypoint replaced)
        try:
            args = parser.parse_args(container["args"])
        except SystemExit:
            pytest.fail(f"{where}: `reconcile {' '.join(container['args'])}` does not parse")
        args.run = []
        assert usage_problem(args) is None, where
        checked.append(args.command or "--watch")
    assert sorted(checked) == ["--watch", "serve", "wait"]


def test_probes_are_routes_of_the_api(rendered: dict[tuple[str, str], Object]) -> None:
    controller = pod(rendered[("DaemonSet", "modelsync")])["containers"][0]
    probes = [
        controller[p]["httpGet"]
        for p in ("livenessProbe", "readinessProbe", "startupProbe")
        if p in controller
    ]
    assert probes
    controller_stand_in = StandingController(to_desired(load_manifests(EXAMPLE / "manifests")))
    with ApiListener(create_app(controller_stand_in), "127.0.0.1", 0) as listener:
        for probe in probes:
            answer = httpx2.get(listener.url + probe["path"], timeout=10)
            # Answered by a route (200 or 503), not "no such endpoint".
            assert answer.status_code in (200, 503), (probe["path"], answer.text)
            assert probe["port"] in [p["name"] for p in controller["ports"]]


def test_the_mirrors_probes_and_scrape_are_routes_of_the_mirror(
    rendered: dict[tuple[str, str], Object], tmp_path: Path
) -> None:
    statefulset = rendered[("StatefulSet", "modelsync-mirror")]
    mirror = pod(statefulset)["containers"][0]
    probes = [mirror[p]["httpGet"] for p in ("livenessProbe", "readinessProbe") if p in mirror]
    assert len(probes) == 2
    monitor = rendered[("PodMonitor", "modelsync-mirror")]
    (scrape,) = monitor["spec"]["podMetricsEndpoints"]
    selected = monitor["spec"]["selector"]["matchLabels"].items()
    assert selected <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    # An upstream nobody listens on: the probes must pass while the hub is down.
    pull = PullThrough(tmp_path, Upstream("http://127.0.0.1:9", None))
    with HubServer(tmp_path, pull_through=pull) as server:
        for route in [*probes, scrape]:
            assert route["port"] in [p["name"] for p in mirror["ports"]]
            answer = httpx2.get(server.url + route["path"], timeout=10)
            assert answer.status_code == 200, (route["path"], answer.text)


def test_the_app_mounts_the_nodes_cache_read_only(
    rendered: dict[tuple[str, str], Object],
) -> None:
    daemonset = rendered[("DaemonSet", "modelsync")]
    controller = pod(daemonset)["containers"][0]
    app = rendered[("Deployment", "sample-app")]
    main = pod(app)["containers"][0]
    waiter = pod(app)["initContainers"][0]

    cache, writable = host_path(daemonset, controller, "/cache")
    assert host_path(app, main, "/models") == (cache, True)
    assert not writable
    state, _ = host_path(daemonset, controller, "/state")
    assert host_path(app, waiter, "/state") == (state, True)  # where `wait` reads the status
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["HF_HUB_CACHE"] == "/models/hub"  # the manifests' cache: /cache/hub


def test_the_pod_monitor_scrapes_the_api_port_with_the_token(
    rendered: dict[tuple[str, str], Object],
) -> None:
    monitor = rendered[("PodMonitor", "modelsync")]
    daemonset = rendered[("DaemonSet", "modelsync")]
    controller = pod(daemonset)["containers"][0]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in [p["name"] for p in controller["ports"]]
    assert endpoint["path"] == "/metrics"
    token = next(e for e in controller["env"] if e["name"] == "MODELSYNC_API_TOKEN")
    assert endpoint["authorization"]["credentials"] == token["valueFrom"]["secretKeyRef"]
    selected = monitor["spec"]["selector"]["matchLabels"].items()
    assert selected <= daemonset["spec"]["template"]["metadata"]["labels"].items()


def test_the_rule_is_the_monitoring_examples(rendered: dict[tuple[str, str], Object]) -> None:
    shipped = yaml.safe_load((REPO_ROOT / "examples" / "monitoring" / "alerts.yaml").read_text())
    assert rendered[("PrometheusRule", "modelsync")]["spec"] == shipped["spec"]

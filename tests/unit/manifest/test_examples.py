"""The deployment examples say what the controller actually accepts and serves."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import yaml

from controller.cli.main import build_parser
from controller.manifest.loading import load_manifests

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _kubernetes() -> dict[str, Any]:
    """The DaemonSet, and the ConfigMap the kustomization generates from the manifest files
    (tests/e2e/test_kubernetes_example.py renders the whole base with kubectl)."""
    base = EXAMPLES / "kubernetes"
    docs = list(yaml.safe_load_all((base / "modelsync.yaml").read_text()))
    (generator,) = yaml.safe_load((base / "kustomization.yaml").read_text())["configMapGenerator"]
    files = [base / f for f in generator["files"]]
    config_map = {
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"]},
        "data": {f.name: f.read_text() for f in files},
    }
    return {d["kind"]: d for d in [*docs, config_map]}


def test_the_daemonset_probes_and_mounts_match_its_configmap_manifest(tmp_path: Path) -> None:
    objects = _kubernetes()
    (tmp_path / "models.yaml").write_text(objects["ConfigMap"]["data"]["models.yaml"])
    manifests = load_manifests(tmp_path)  # a valid manifest
    pod = objects["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.watch and args.path == "/etc/modelsync" and args.log_format == "json"
    (port,) = container["ports"]
    assert port["containerPort"] == manifests.controller.port
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    # Listening beyond loopback needs the token; the controller refuses to start without it.
    assert manifests.controller.host == "0.0.0.0"
    assert "MODELSYNC_API_TOKEN" in {e["name"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["manifests"]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert mounts["manifests"] == args.path
    assert "hostPath" in volumes["cache"] and manifests.cache is not None
    assert manifests.cache.startswith(mounts["cache"] + "/")
    assert manifests.state == mounts["state"] and "hostPath" in volumes["state"]


def test_the_systemd_unit_runs_the_controller_and_reloads_with_sighup() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(EXAMPLES / "systemd" / "modelsync.service")
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/reconcile")
    args = build_parser().parse_args(command[1:])
    assert args.watch and args.log_format == "json"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"

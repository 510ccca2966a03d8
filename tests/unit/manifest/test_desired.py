"""What a valid manifest means: the desired state, with defaults from the environment the way
huggingface_hub reads it, and paths relative to the manifest."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controller.domain import Policy, Priority, UpdatePolicy
from controller.manifest.desired import to_desired
from controller.manifest.loading import load_manifests
from reconcilers.retention import OLD_REVISION_GRACE
from tests.unit.manifest.texts import HEAD, manifest, model, write

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_defaults_and_enums(tmp_path: Path) -> None:
    text = HEAD + "      updates: off\n      policy: on-demand\n      priority: high\n"
    desired = to_desired(load_manifests(write(tmp_path, "m.yaml", text)), env={})
    [m] = desired.models
    assert (m.updates, m.policy, m.priority) == (UpdatePolicy.OFF, Policy.ON_DEMAND, Priority.HIGH)
    assert (m.revision, m.include, m.exclude, m.suspend) == ("main", (), (), False)
    assert m.source == f"{tmp_path / 'm.yaml'}:7"


def test_relative_paths_resolve_against_the_manifest_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    spec = "  cache: ../models/hub\n  state: state\n  statusFile: ~/status.yaml\n"
    file = write(directory, "m.yaml", manifest(spec=spec, models=model("a")))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir("/")  # the working directory must not matter
    desired = to_desired(load_manifests(file), env={})
    assert desired.cache_dir == str(tmp_path / "models" / "hub")
    assert desired.state_dir == str(directory / "state")
    assert desired.status_file == str(tmp_path / "home" / "status.yaml")


def test_defaults_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_manifests(write(tmp_path, "m.yaml", HEAD))
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home"

    desired = to_desired(loaded)
    assert desired.cache_dir == str(home / ".cache" / "huggingface" / "hub")
    assert desired.state_dir == str(home / ".local" / "state" / "modelsync")
    assert desired.status_file == str(home / ".local" / "state" / "modelsync" / "status.yaml")
    assert desired.endpoint == "https://huggingface.co"
    assert desired.generation == loaded.generation

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local:8080/")
    desired = to_desired(loaded)
    assert desired.cache_dir == str(tmp_path / "hf" / "hub")
    assert desired.state_dir == str(tmp_path / "xdg-state" / "modelsync")
    assert desired.endpoint == "http://mirror.local:8080"

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert to_desired(loaded).cache_dir == str(tmp_path / "cache")


def test_manifest_settings_win_over_the_environment(tmp_path: Path) -> None:
    spec = "  cache: /srv/hub\n  state: /srv/state\n  endpoint: https://mirror.example/\n"
    loaded = load_manifests(write(tmp_path, "m.yaml", manifest(spec=spec, models=model("a"))))
    env = {"HF_HUB_CACHE": "/env/hub", "HF_ENDPOINT": "https://env.example", "XDG_STATE_HOME": "/x"}
    desired = to_desired(loaded, env=env)
    assert (desired.cache_dir, desired.state_dir, desired.endpoint) == (
        "/srv/hub",
        "/srv/state",
        "https://mirror.example",
    )
    assert desired.status_file == "/srv/state/status.yaml"


def test_shipped_manifest_is_valid() -> None:
    loaded = load_manifests(REPO_ROOT / "manifests" / "wan2.2.yaml")
    desired = {m.name: m for m in to_desired(loaded, env={}).models}
    assert set(desired) == {"t2v-A14B", "i2v-A14B", "ti2v-5B"}
    assert desired["t2v-A14B"].repo == "Wan-AI/Wan2.2-T2V-A14B"
    assert desired["i2v-A14B"].repo == "Wan-AI/Wan2.2-I2V-A14B"
    assert desired["ti2v-5B"].repo == "Wan-AI/Wan2.2-TI2V-5B"
    assert desired["t2v-A14B"].priority is Priority.CRITICAL
    assert desired["ti2v-5B"].policy is Policy.ON_DEMAND
    assert all("*.safetensors" in m.include for m in desired.values())
    assert loaded.retention.max_unused_days == 30
    assert loaded.retention.max_storage_usage_percent == 80
    assert loaded.retention.min_usage_frequency == 0.1


def test_usage_window_tags_and_alternatives_reach_the_desired_state(tmp_path: Path) -> None:
    spec = "  usage: {window_days: 14}\n"
    models = model("a", extra="      tags: [video, hd]\n      alternatives: [b]\n") + model("b")
    desired = to_desired(load_manifests(write(tmp_path, "m.yaml", manifest("u", spec, models))))
    assert desired.usage_window_days == 14
    a, b = desired.models
    assert (a.tags, a.alternatives, b.tags, b.alternatives) == (("video", "hd"), ("b",), (), ())
    default = to_desired(load_manifests(write(tmp_path, "d.yaml", manifest("d", "", model("a")))))
    assert default.usage_window_days == 30


def test_a_probe_is_parsed_with_its_timeout(tmp_path: Path) -> None:
    extra = "      probe: {command: [python, -c, 'import torch'], timeout: 90s}\n"
    file = write(tmp_path, "m.yaml", manifest(models=model("m", extra=extra)))
    (declared,) = to_desired(load_manifests(file)).models
    assert declared.probe is not None
    assert declared.probe.command == ("python", "-c", "import torch")
    assert declared.probe.timeout_s == 90


def test_old_revision_grace_is_a_retention_duration(tmp_path: Path) -> None:
    default = to_desired(load_manifests(write(tmp_path, "m.yaml", manifest(models=model("a")))))
    assert default.retention.old_revision_grace == OLD_REVISION_GRACE == timedelta(minutes=10)
    spec = "  retention:\n    old_revision_grace: 1h\n"
    path = write(tmp_path, "m.yaml", manifest(spec=spec, models=model("a")))
    assert to_desired(load_manifests(path)).retention.old_revision_grace == timedelta(hours=1)

"""Running the real ``reconcile`` command in a subprocess against a local hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# How long a test waits for something that should happen: generous, since a wait ends as
# soon as its condition holds and only a failing test waits this long on a loaded machine.
DEADLINE_S = 60.0


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Workdir:
    """A manifest directory plus the client cache and state dir it points at."""

    root: Path
    endpoint: str

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def status_file(self) -> Path:
        return self.state / "status.yaml"

    def write_manifest(
        self, models: list[dict[str, Any]], name: str = "models.yaml", **spec: Any
    ) -> Path:
        self.manifests.mkdir(parents=True, exist_ok=True)
        doc = {
            "apiVersion": "modelsync/v1",
            "kind": "ModelSet",
            "metadata": {"name": "test"},
            "spec": {
                "cache": str(self.cache),
                "state": str(self.state),
                "endpoint": self.endpoint,
                **spec,
                "models": models,
            },
        }
        path = self.manifests / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.status_file.read_text())
        return data

    def model_status(self, name: str) -> dict[str, Any]:
        return next(m for m in self.status()["models"] if m["name"] == name)

    def reconcile(self, *args: str, env: dict[str, str] | None = None) -> Run:
        return reconcile(*args, "-f", str(self.manifests), endpoint=self.endpoint, env=env)

    def start(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        module: str = "controller",
    ) -> subprocess.Popen[bytes]:
        """Run ``reconcile`` in the background, e.g. to kill it mid-transfer; ``log`` gets
        its stdout and stderr.  ``module`` is what ``python -m`` runs: one that wraps the
        command, such as :mod:`tests.support.deletion_halt`, takes its arguments first."""
        command = _command(*args, "-f", str(self.manifests), module=module)
        environment = _environment(self.endpoint, env)
        if log is None:
            return subprocess.Popen(
                command,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=REPO_ROOT,
            )
        with log.open("ab") as output:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                command, env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )


def reconcile(
    *args: str,
    endpoint: str = "http://127.0.0.1:9",
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Run:
    proc = subprocess.run(
        _command(*args),
        env=_environment(endpoint, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def wait_until(condition: Callable[[], Any], what: str, deadline: float = DEADLINE_S) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail the test
    with ``what`` once ``deadline`` seconds have passed."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)


def _command(*args: str, module: str = "controller") -> list[str]:
    return [sys.executable, "-m", module, *args]


def _environment(endpoint: str, env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "HF_ENDPOINT": endpoint, "PYTHONPATH": str(REPO_ROOT), **(env or {})}

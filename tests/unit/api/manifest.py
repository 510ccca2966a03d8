"""The manifest the API's tests serve: an `always` model and an on-demand one."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_manifest(root: Path) -> Path:
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "api"},
        "spec": {
            "cache": str(root / "cache"),
            "state": str(root / "state"),
            "endpoint": "http://127.0.0.1:9",
            "models": [
                {"name": "a", "repo": "org/a"},
                {"name": "b", "repo": "org/b", "policy": "on-demand", "alternatives": ["a"]},
            ],
        },
    }
    manifest = root / "models.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    return manifest

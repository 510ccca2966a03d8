"""A blob two declared models share (two revisions of one repo) travels once per pass: when
both download it, and when both find it damaged and repair it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from controller.cache import layout
from tests.support.cli import Workdir
from tests.support.hub import LocalHub, safetensors_bytes

WEIGHTS = safetensors_bytes(os.urandom(2 * 1024 * 1024))
MODELS = [
    {"name": "stable", "repo": "org/shared", "revision": "main"},
    {"name": "next", "repo": "org/shared", "revision": "v2"},
]


def publish_two_revisions(hub: LocalHub) -> None:
    hub.publish("org/shared", {"config.json": b'{"v": 1}', "model.safetensors": WEIGHTS})
    hub.publish(
        "org/shared", {"config.json": b'{"v": 2}', "model.safetensors": WEIGHTS}, branch="v2"
    )


def weight_gets(hub: LocalHub) -> int:
    served = hub.requests_for("*/model.safetensors", "GET")
    return len([r for r in served if r.status in (200, 206)])


def the_blob(work: Workdir) -> Path:
    return layout.blob_path(work.cache, "org/shared", hashlib.sha256(WEIGHTS).hexdigest())


def test_a_blob_of_two_revisions_is_downloaded_once(tmp_path: Path, hub: LocalHub) -> None:
    publish_two_revisions(hub)
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(MODELS)

    run = work.reconcile("--apply")

    assert run.code == 0, run.err
    assert {m["name"]: m["phase"] for m in work.status()["models"]} == {
        "stable": "AVAILABLE",
        "next": "AVAILABLE",
    }
    assert weight_gets(hub) == 1
    assert the_blob(work).read_bytes() == WEIGHTS


@pytest.mark.parametrize("concurrency", [1, 8])
@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_blob_of_two_revisions_is_repaired_with_one_download(
    tmp_path: Path, hub: LocalHub, damage: str, concurrency: int
) -> None:
    """Truncated: both plans say REPAIR, and the later model must not move aside the blob the
    earlier one just fetched.  Overwritten (same size, new mtime): both models verify it and
    find it damaged.  One model at a time, or side by side."""
    publish_two_revisions(hub)
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest(MODELS, downloads={"concurrency": concurrency})
    assert work.reconcile("--apply").code == 0
    blob = the_blob(work)
    blob.write_bytes(WEIGHTS[:1000] if damage == "truncated" else bytes(len(WEIGHTS)))
    hub.clear_requests()

    run = work.reconcile("--apply")

    assert run.code == 0, run.err
    assert {m["name"]: m["phase"] for m in work.status()["models"]} == {
        "stable": "AVAILABLE",
        "next": "AVAILABLE",
    }
    assert weight_gets(hub) == 1
    assert blob.read_bytes() == WEIGHTS

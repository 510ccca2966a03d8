"""Leases: whether a recorded lease is live, and ``with client.use(name)``, the door through
which an application takes one (``POST /v1/models/{name}/lease`` is tested with the HTTP API,
in ``tests/unit/api/test_app.py``).

The table's rows are tested in ``test_lease_records.py``, the deletion interlock in
``test_deletions.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from controller.api.client import ModelAvailability
from controller.domain import Lease
from controller.store import StateStore, leases
from tests.support.factories import NOW
from tests.unit.store.samples import dead_pid, lease

# --------------------------------------------------------------------------- liveness


@pytest.mark.parametrize(
    ("held", "live"),
    [
        pytest.param(lease(pid=os.getpid()), True, id="own-process-fresh-heartbeat"),
        pytest.param(lease(pid=None), True, id="api-lease-fresh-heartbeat"),
        pytest.param(lease(pid=dead_pid()), False, id="holder-process-gone"),
        pytest.param(lease(at=NOW - timedelta(seconds=61)), False, id="heartbeat-older-than-ttl"),
        pytest.param(lease(at=NOW - timedelta(seconds=59)), True, id="heartbeat-within-ttl"),
    ],
)
def test_a_lease_is_live_while_its_holder_is(held: Lease, live: bool) -> None:
    assert leases.is_live(held, NOW) is live


def test_a_lease_from_another_host_lives_by_its_heartbeat_only() -> None:
    elsewhere = lease(pid=dead_pid())
    other = Lease(**{**elsewhere.__dict__, "host": "another-host"})
    assert leases.is_live(other, NOW)
    assert not leases.is_live(other, NOW + timedelta(seconds=61))


# --------------------------------------------------------------------------- the doors


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ModelAvailability]:
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "leases"},
        "spec": {
            "cache": str(tmp_path / "cache"),
            "state": str(tmp_path / "state"),
            "endpoint": "http://127.0.0.1:9",
            "models": [{"name": "a", "repo": "org/a"}],
        },
    }
    manifest = tmp_path / "models.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    with ModelAvailability(manifest, clock=lambda: NOW) as c:
        yield c


def live_leases(client: ModelAvailability) -> list[str]:
    reader = StateStore.open_readonly(client.desired.state_dir)
    assert reader is not None
    with reader:
        return [x.model for x in reader.leases() if leases.is_live(x, NOW)]


def test_use_holds_a_lease_for_the_with_block(client: ModelAvailability) -> None:
    with client.use("a") as held:
        assert held.pid == os.getpid() and live_leases(client) == ["a"]
        assert client.status("a").in_use is True
    assert live_leases(client) == [] and client.status("a").in_use is False


def test_use_releases_on_an_exception(client: ModelAvailability) -> None:
    with pytest.raises(RuntimeError), client.use("a"):
        raise RuntimeError("the model failed to load")
    assert live_leases(client) == []

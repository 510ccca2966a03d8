"""Leases, ownership and the deletion journal in the state store, and the lease doors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from controller.api.client import ModelAvailability
from controller.api.routes import Api
from controller.domain import FileWork, Lease, Reason
from controller.store import leases
from controller.store.state import BeingEvictedError, DownloadOutcome, InUseError, StateStore
from tests.unit.factories import C1, NOW

FILES = (FileWork("config.json", 10, "c" * 40),)


def lease(
    model: str = "a", *, pid: int | None = None, at: datetime = NOW, ttl: float = 60
) -> Lease:
    return leases.new_lease(model, at, ttl_seconds=ttl, pid=pid)


def begin(store: StateStore, reason: Reason = Reason.UNUSED, model: str = "a") -> int:
    return store.begin_deletion(
        model=model,
        repo="org/a",
        commit=C1,
        reason=reason,
        message="unused",
        files=FILES,
        at=NOW,
        is_live=lambda held: leases.is_live(held, NOW),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as s:
        yield s


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


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


# --------------------------------------------------------------------------- the store


def test_a_successful_download_is_owned_and_a_failed_one_is_not(store: StateStore) -> None:
    for path, outcome in (("ok.bin", DownloadOutcome.OK), ("bad.bin", DownloadOutcome.FAILED)):
        store.record_download(
            model="a",
            repo="org/a",
            revision="main",
            commit=C1,
            path=path,
            bytes=1,
            started_at=NOW,
            finished_at=NOW,
            outcome=outcome,
        )
    assert [(o.path, o.model, o.adopted, o.since) for o in store.owned()] == [
        ("ok.bin", "a", False, NOW)
    ]


def test_adopting_keeps_what_was_downloaded(store: StateStore) -> None:
    store.adopt("a", "org/a", C1, ["x.bin"], NOW)
    assert store.adopt("a", "org/a", C1, ["x.bin", "y.bin"], NOW) == 1
    assert [(o.path, o.adopted) for o in store.owned()] == [("x.bin", True), ("y.bin", True)]


def test_a_deletion_is_refused_while_a_lease_lives(store: StateStore) -> None:
    store.add_lease(lease(pid=os.getpid()))
    with pytest.raises(InUseError, match="a is in use"):
        begin(store)
    assert store.pending_deletions() == []


def test_a_void_lease_does_not_hold_a_deletion(store: StateStore) -> None:
    store.add_lease(lease(pid=dead_pid()))
    journal = begin(store)
    assert [d.id for d in store.pending_deletions()] == [journal]


def test_a_lease_is_refused_while_the_model_is_evicted(store: StateStore) -> None:
    journal = begin(store, Reason.OVER_BUDGET)
    with pytest.raises(BeingEvictedError):
        store.add_lease(lease())
    store.finish_deletion(journal, NOW, repo="org/a", commit=C1, paths=["config.json"])
    store.add_lease(lease())  # the eviction is over


def test_an_old_revision_deletion_does_not_refuse_leases(store: StateStore) -> None:
    begin(store, Reason.OLD_REVISION)
    store.add_lease(lease())
    assert [held.model for held in store.leases()] == ["a"]


def test_finishing_forgets_ownership_and_closes_the_journal(store: StateStore) -> None:
    store.adopt("a", "org/a", C1, ["config.json", "other.json"], NOW)
    journal = begin(store)
    store.finish_deletion(journal, NOW, repo="org/a", commit=C1, paths=["config.json"])
    assert [o.path for o in store.owned()] == ["other.json"]
    assert store.pending_deletions() == []
    (done,) = store.deletion_history()
    assert (done.reason, done.files, done.finished_at) == (Reason.UNUSED, FILES, NOW)


def test_resuming_an_interrupted_eviction_stays_an_eviction(store: StateStore) -> None:
    begin(store, Reason.UNUSED)
    second = begin(store, Reason.INTERRUPTED)
    assert [d.id for d in store.pending_deletions()] == [second]  # the first is closed
    with pytest.raises(BeingEvictedError):
        store.add_lease(lease())


def test_an_eviction_is_remembered_until_the_model_is_requested(store: StateStore) -> None:
    begin(store, Reason.UNUSED)
    assert list(store.evictions()) == ["a"]
    store.add_request("a", NOW)
    assert store.evictions() == {}


def test_renew_release_and_prune(store: StateStore) -> None:
    held, gone = lease(pid=os.getpid()), lease("b", pid=dead_pid())
    store.add_lease(held)
    store.add_lease(gone)
    assert store.renew_lease(held.id, NOW + timedelta(seconds=30))
    assert store.prune_leases(lambda x: leases.is_live(x, NOW)) == 1
    assert [x.model for x in store.leases()] == ["a"]
    assert store.release_lease(held.id) and not store.release_lease(held.id)
    assert not store.renew_lease(held.id, NOW)


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


def test_http_lease_take_renew_release(client: ModelAvailability) -> None:
    api = Api(client)
    code, grant = api.handle("POST", "/v1/models/a/lease", b'{"ttl_seconds": 30}')
    assert code == 200 and grant["model"] == "a" and grant["ttl_seconds"] == 30
    assert grant["expires_at"] == "2026-11-26T12:00:30Z"
    assert live_leases(client) == ["a"]
    body = f'{{"lease_id": "{grant["lease_id"]}"}}'.encode()
    code, renewed = api.handle("POST", "/v1/models/a/lease", body)
    assert code == 200 and renewed["lease_id"] == grant["lease_id"]
    assert live_leases(client) == ["a"]  # renewed, not a second lease
    code, done = api.handle("DELETE", f"/v1/models/a/lease/{grant['lease_id']}")
    assert (code, done["released"]) == (200, True)
    assert live_leases(client) == []
    code, _ = api.handle("DELETE", "/v1/models/a/lease", body)
    assert code == 404


@pytest.mark.parametrize(
    ("method", "body", "code"),
    [
        ("POST", b'{"ttl_seconds": 0}', 400),
        ("POST", b'{"ttl_seconds": "1m"}', 400),
        ("POST", b'{"colour": "red"}', 400),
        ("DELETE", b"", 400),
        ("GET", b"", 405),
    ],
)
def test_http_lease_rejects_bad_requests(
    client: ModelAvailability, method: str, body: bytes, code: int
) -> None:
    assert Api(client).handle(method, "/v1/models/a/lease", body)[0] == code


def test_http_lease_on_an_unknown_model_is_404(client: ModelAvailability) -> None:
    code, body = Api(client).handle("POST", "/v1/models/nope/lease", b"")
    assert code == 404 and body["declared_models"] == ["a"]


def test_http_lease_while_evicted_is_409(client: ModelAvailability, tmp_path: Path) -> None:
    with StateStore.open(tmp_path / "state") as store:
        begin(store, Reason.OVER_BUDGET)
    code, body = Api(client).handle("POST", "/v1/models/a/lease", b"")
    assert code == 409 and "being evicted" in body["error"]

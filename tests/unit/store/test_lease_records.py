"""Recorded leases: taken, renewed, released, pruned once void, and refused during an eviction."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from controller.domain import Reason
from controller.store import BeingEvictedError, StateStore, leases
from tests.support.factories import C1, NOW
from tests.unit.store.samples import begin, dead_pid, lease


def test_renew_release_and_prune(store: StateStore) -> None:
    held, gone = lease(pid=os.getpid()), lease("b", pid=dead_pid())
    store.add_lease(held)
    store.add_lease(gone)
    assert store.renew_lease(held.id, NOW + timedelta(seconds=30))
    assert store.prune_leases(lambda x: leases.is_live(x, NOW)) == 1
    assert [x.model for x in store.leases()] == ["a"]
    assert store.release_lease(held.id) and not store.release_lease(held.id)
    assert not store.renew_lease(held.id, NOW)


def test_renewing_moves_the_heartbeat_and_may_change_the_ttl(store: StateStore) -> None:
    held = lease(ttl=60)
    store.add_lease(held)
    store.renew_lease(held.id, NOW + timedelta(seconds=30))
    store.renew_lease(held.id, NOW + timedelta(seconds=40), ttl_seconds=5)
    (renewed,) = store.leases()
    assert (renewed.heartbeat_at, renewed.ttl_seconds) == (NOW + timedelta(seconds=40), 5)
    assert renewed.acquired_at == NOW


def test_leases_of_one_model(store: StateStore) -> None:
    for model in ("b", "a", "b"):
        store.add_lease(lease(model))
    assert [x.model for x in store.leases()] == ["a", "b", "b"]
    assert [x.model for x in store.leases("b")] == ["b", "b"]
    assert store.leases("c") == []


@pytest.mark.parametrize(
    ("reason", "refused"),
    [
        (Reason.UNUSED, True),
        (Reason.OVER_BUDGET, True),
        (Reason.OLD_REVISION, False),
        (Reason.REMOVED_FROM_MANIFEST, False),
        (Reason.NOT_SELECTED, False),
    ],
)
def test_a_lease_is_refused_while_the_model_is_evicted(
    store: StateStore, reason: Reason, refused: bool
) -> None:
    journal = begin(store, reason)
    if refused:
        with pytest.raises(BeingEvictedError, match="a is being evicted"):
            store.add_lease(lease())
        assert store.leases() == []
    else:
        store.add_lease(lease())  # files the model no longer needs: it may still be used
        assert [held.model for held in store.leases()] == ["a"]
    store.finish_deletion(journal, NOW, repo="org/a", commit=C1, paths=["config.json"])
    store.add_lease(lease())  # the deletion is over
    store.add_lease(lease("b"))  # and another model was never held up

"""The deletion journal and evictions: a deletion waits for live leases, is journalled before it
starts, is finished after a crash, and an evicted model stays away until requested."""

from __future__ import annotations

import os

import pytest

from controller.domain import Reason
from controller.store import BeingEvictedError, InUseError, StateStore
from tests.support.factories import C1, NOW
from tests.unit.store.samples import FILES, begin, dead_pid, lease


def test_a_deletion_is_refused_while_a_lease_lives(store: StateStore) -> None:
    store.add_lease(lease(pid=os.getpid()))
    with pytest.raises(InUseError, match=r"a is in use \(pid \d+ on .*\)") as refused:
        begin(store)
    assert refused.value.model == "a" and len(refused.value.leases) == 1
    assert store.pending_deletions() == [] and store.evictions() == {}
    begin(store, model="b")  # another model's lease holds nothing


def test_a_void_lease_does_not_hold_a_deletion(store: StateStore) -> None:
    store.add_lease(lease(pid=dead_pid()))
    journal = begin(store)
    assert [d.id for d in store.pending_deletions()] == [journal]


def test_finishing_forgets_ownership_and_closes_the_journal(store: StateStore) -> None:
    store.adopt("a", "org/a", C1, ["config.json", "other.json"], NOW)
    journal = begin(store)
    (pending,) = store.pending_deletions()
    assert (pending.id, pending.files, pending.finished_at) == (journal, FILES, None)
    store.finish_deletion(journal, NOW, repo="org/a", commit=C1, paths=["config.json"])
    assert [o.path for o in store.owned()] == ["other.json"]
    assert store.pending_deletions() == []
    (done,) = store.deletion_history()
    assert (done.reason, done.files, done.finished_at) == (Reason.UNUSED, FILES, NOW)


def test_deletion_history_is_newest_first(store: StateStore) -> None:
    first = begin(store, Reason.OLD_REVISION, model="a")
    second = begin(store, Reason.NOT_SELECTED, model="b")
    assert [d.id for d in store.deletion_history()] == [second, first]
    assert [d.id for d in store.deletion_history(limit=1)] == [second]


@pytest.mark.parametrize(
    ("first", "evicted"),
    [(Reason.UNUSED, True), (Reason.OVER_BUDGET, True), (Reason.OLD_REVISION, False)],
)
def test_resuming_an_interrupted_deletion_keeps_what_it_was(
    store: StateStore, first: Reason, evicted: bool
) -> None:
    begin(store, first)
    second = begin(store, Reason.INTERRUPTED)
    assert [d.id for d in store.pending_deletions()] == [second]  # the first is closed
    assert list(store.evictions()) == (["a"] if evicted else [])
    if evicted:  # still an eviction: no lease may start until it is over
        with pytest.raises(BeingEvictedError):
            store.add_lease(lease())
    else:
        store.add_lease(lease())


def test_an_eviction_is_remembered_until_the_model_is_requested(store: StateStore) -> None:
    begin(store, Reason.UNUSED)
    (eviction,) = store.evictions().values()
    assert (eviction.model, eviction.reason, eviction.message, eviction.at) == (
        "a",
        Reason.UNUSED,
        "unused",
        NOW,
    )
    store.add_request("a", NOW)
    assert store.evictions() == {}

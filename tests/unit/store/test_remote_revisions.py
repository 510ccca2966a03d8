"""The hub's last answers: remembered as news, recalled as stale."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from controller.store import StateStore
from tests.support.factories import C1, C2, NOW
from tests.unit.store.samples import remote


def test_remote_revision_round_trips_and_comes_back_stale(tmp_path: Path) -> None:
    rev = remote()
    with StateStore.open(tmp_path) as store:
        store.remember_remote(rev, observed_at=NOW)

    with StateStore.open(tmp_path) as store:
        recalled = store.recall_remote(rev.repo, "main")

    assert recalled == dataclasses.replace(rev, stale=True, learned_at=NOW)


def test_remembering_again_keeps_the_latest_answer(store: StateStore) -> None:
    store.remember_remote(remote(C1), observed_at=NOW)
    store.remember_remote(remote(C2), observed_at=NOW + timedelta(hours=1))

    recalled = store.recall_remote("Wan-AI/Wan2.2-TI2V-5B", "main")
    assert recalled is not None
    assert recalled.commit == C2
    assert store.recall_remote("Wan-AI/Wan2.2-TI2V-5B", "other-branch") is None
    assert store.recall_remote("nobody/nothing", "main") is None


def test_an_older_answer_never_replaces_a_newer_one(store: StateStore) -> None:
    assert store.remember_remote(remote(C2), observed_at=NOW + timedelta(hours=1))
    # Learned earlier (a lock run that asked before a pass did), written later.
    assert not store.remember_remote(remote(C1), observed_at=NOW)

    recalled = store.recall_remote("Wan-AI/Wan2.2-TI2V-5B", "main")
    assert recalled is not None
    assert (recalled.commit, recalled.learned_at) == (C2, NOW + timedelta(hours=1))


def test_a_stale_revision_cannot_be_remembered_as_news(store: StateStore) -> None:
    with pytest.raises(ValueError, match="stale"):
        store.remember_remote(dataclasses.replace(remote(), stale=True), observed_at=NOW)
    assert store.recall_remote(remote().repo, "main") is None


def test_a_pass_remembers_all_its_answers_at_once_and_never_over_newer_ones(
    store: StateStore,
) -> None:
    newer = dataclasses.replace(remote(C2), repo="org/newer")
    store.remember_remote(newer, observed_at=NOW + timedelta(hours=1))
    older = dataclasses.replace(remote(C1), repo="org/newer")

    store.remember_remotes([remote(C1), older], observed_at=NOW)

    assert store.recall_remote("Wan-AI/Wan2.2-TI2V-5B", "main") == dataclasses.replace(
        remote(C1), stale=True, learned_at=NOW
    )
    kept = store.recall_remote("org/newer", "main")
    assert kept is not None and kept.commit == C2
    with pytest.raises(ValueError, match="stale"):
        store.remember_remotes([dataclasses.replace(remote(), stale=True)], observed_at=NOW)


LATER = NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("first_files", "first_commit", "then_commit", "then_at", "files_kept", "commit_kept", "at"),
    [
        # The same answer again: only its time is renewed.
        (None, C1, C1, LATER, "all", C1, LATER),
        # A lock remembered fewer files of the commit: the hub's whole answer replaces them.
        (1, C1, C1, LATER, "all", C1, LATER),
        # The branch moved: the new commit and its files.
        (None, C1, C2, LATER, "all", C2, LATER),
        # The same answer learned earlier renews nothing.
        (None, C1, C1, NOW - timedelta(hours=1), "all", C1, NOW),
        # A lock's part learned earlier, then the whole answer learned earlier still: kept.
        (1, C1, C1, NOW - timedelta(hours=1), 1, C1, NOW),
    ],
)
def test_a_pass_renews_what_it_heard_again_and_replaces_what_changed(
    store: StateStore,
    first_files: int | None,
    first_commit: str,
    then_commit: str,
    then_at: datetime,
    files_kept: int | str,
    commit_kept: str,
    at: datetime,
) -> None:
    whole = remote(first_commit)
    first = dataclasses.replace(whole, files=whole.files[:first_files])
    store.remember_remote(first, observed_at=NOW)

    store.remember_remotes([remote(then_commit)], observed_at=then_at)

    recalled = store.recall_remote(whole.repo, "main")
    assert recalled is not None
    expected = remote(commit_kept).files if files_kept == "all" else whole.files[:files_kept]
    assert (recalled.commit, recalled.files, recalled.learned_at) == (commit_kept, expected, at)

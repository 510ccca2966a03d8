"""Verification records: one per blob, the latest check, kept across reopening."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from controller.store import StateStore
from tests.support.factories import NOW
from tests.unit.store.samples import verification


def test_verification_round_trip(tmp_path: Path) -> None:
    cest = timezone(timedelta(hours=2))
    good = verification("a" * 64, checked_at=datetime(2025, 3, 1, 14, 0, tzinfo=cest))
    # An inode above 2**63, as NFS or FUSE may hand out: SQLite's integers are signed.
    bad = verification("b" * 40, ok=False, digest="c" * 40, inode=2**64 - 5)
    other = verification("a" * 64, size=1)

    with StateStore.open(tmp_path) as store:
        store.record_verification("org/one", good)
        store.record_verification("org/one", bad)
        store.record_verification("org/two", other)

    with StateStore.open(tmp_path) as store:
        assert store.verifications() == {
            ("org/one", "a" * 64): good,
            ("org/one", "b" * 40): bad,
            ("org/two", "a" * 64): other,
        }
        assert store.verifications_for("org/one") == {"a" * 64: good, "b" * 40: bad}
        assert store.verifications_for("org/absent") == {}
        assert store.verification("org/one", "b" * 40) == bad
        assert store.verification("org/two", "b" * 40) is None
        recalled = store.verifications_for("org/one")["a" * 64].checked_at
        assert recalled.utcoffset() == timedelta(0)  # stored and returned in UTC


def test_recording_again_replaces_the_previous_check(store: StateStore) -> None:
    store.record_verification("org/repo", verification(ok=True))
    newer = verification(ok=False, mtime_ns=5, checked_at=NOW + timedelta(days=1))
    store.record_verification("org/repo", newer)

    assert store.verifications_for("org/repo") == {"f" * 64: newer}


def test_forget_verification(store: StateStore) -> None:
    store.record_verification("org/repo", verification("a" * 64))
    store.record_verification("org/repo", verification("b" * 64))

    store.forget_verification("org/repo", "a" * 64)
    store.forget_verification("org/repo", "never-recorded")

    assert list(store.verifications_for("org/repo")) == ["b" * 64]

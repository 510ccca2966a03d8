"""Time in the state database: UTC text in, UTC instants out, and no instant without a zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from controller.domain import HealthCheck, Reason
from controller.store import StateStore
from tests.support.factories import C1
from tests.unit.store.samples import FILES, READS, download, lease, remote, verification

NAIVE = datetime(2025, 1, 1, 12, 0)

# Every write that stores an instant, given one without a time zone.
NAIVE_WRITES: dict[str, Callable[[StateStore], object]] = {
    "record_verification": lambda s: s.record_verification(
        "org/repo", verification(checked_at=NAIVE)
    ),
    "record_download": lambda s: download(s, started_at=NAIVE, finished_at=NAIVE),
    "adopt": lambda s: s.adopt("a", "org/a", C1, ["x.bin"], NAIVE),
    "remember_remote": lambda s: s.remember_remote(remote(), observed_at=NAIVE),
    "record_use": lambda s: s.record_use("a", NAIVE),
    "prune_usage": lambda s: s.prune_usage(NAIVE),
    "add_request": lambda s: s.add_request("a", NAIVE),
    "pause": lambda s: s.pause("a", NAIVE),
    "add_lease": lambda s: s.add_lease(lease(at=NAIVE)),
    "renew_lease": lambda s: s.renew_lease("id", NAIVE),
    "begin_deletion": lambda s: s.begin_deletion(
        model="a",
        repo="org/a",
        commit=C1,
        reason=Reason.UNUSED,
        message="unused",
        files=FILES,
        at=NAIVE,
        is_live=lambda _: False,
    ),
    "record_health": lambda s: s.record_health(HealthCheck("a", C1, NAIVE, files_ok=True)),
}


@pytest.mark.parametrize("write", NAIVE_WRITES.values(), ids=NAIVE_WRITES.keys())
def test_every_write_refuses_an_instant_without_a_time_zone(
    tmp_path: Path, write: Callable[[StateStore], object]
) -> None:
    with StateStore.open(tmp_path) as store:
        with pytest.raises(ValueError, match="time zone"):
            write(store)
        assert [read(store) for read, _ in READS.values()] == [
            empty for _, empty in READS.values()
        ]


def test_instants_come_back_in_utc_whatever_zone_they_went_in(store: StateStore) -> None:
    cest = timezone(timedelta(hours=2))
    store.add_request("a", datetime(2025, 3, 1, 14, 0, tzinfo=cest))
    (requested,) = store.requests().values()
    assert requested == datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert requested.utcoffset() == timedelta(0)

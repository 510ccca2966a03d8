"""The claim file: exclusive creation, takeover only when stale, exactly one winner of a race.

Records of other nodes are written as such a node would write them (another host, an old or
fresh heartbeat); the race runs real processes against one file.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from controller.system.claim_file import (
    DEFAULT_STALE_AFTER,
    TIMEOUT_ENV,
    ClaimFile,
    Held,
    Holder,
    stale_after_from_env,
)


def foreign(path: Path, *, heartbeat_age: float, generation: int = 1) -> Holder:
    """Write the record of a holder on another node whose last heartbeat was that long ago."""
    now = time.time()
    holder = Holder(
        host="elsewhere",
        pid=1,
        node="elsewhere|boot|pid:[1]",
        nonce="f" * 32,
        generation=generation,
        started_at=now - 3600,
        heartbeat=now - heartbeat_age,
        stale_after=30.0,
        about={"url": "http://10.0.0.7:8080"},
    )
    path.write_text(holder.to_json())
    return holder


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: its pid names no process
    return child.pid


def test_a_free_claim_is_taken_and_a_second_taker_is_told_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    first = ClaimFile(path, about={"url": "http://127.0.0.1:1"})
    first.take()
    with pytest.raises(Held) as held:
        ClaimFile(path).take()
    assert held.value.holder.pid == os.getpid()
    assert held.value.holder.about == {"url": "http://127.0.0.1:1"}
    assert first.mine()


def test_a_live_holder_on_another_node_keeps_its_claim(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    foreign(path, heartbeat_age=1.0)
    with pytest.raises(Held) as held:
        ClaimFile(path).take()
    assert held.value.holder.host == "elsewhere"


def test_a_stale_heartbeat_is_taken_over_with_the_next_generation(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    foreign(path, heartbeat_age=31.0, generation=4)
    claim = ClaimFile(path)
    claim.take()
    record = claim.read()
    assert record is not None
    assert (record.pid, record.generation, record.released) == (os.getpid(), 5, False)
    assert [p.name for p in tmp_path.iterdir()] == ["x.claim"]  # no ticket, no temp file left


def test_a_dead_pid_on_this_node_frees_the_claim_before_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    ghost = ClaimFile(path, stale_after=3600.0)
    ghost.take()
    record = ghost.read()
    assert record is not None
    path.write_text(replace(record, pid=dead_pid()).to_json())
    ClaimFile(path).take()  # no Held: the pid is gone, the hour's timeout does not matter


def test_a_released_claim_is_free_and_generations_keep_growing(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    first = ClaimFile(path)
    first.take()
    first.release()
    second = ClaimFile(path)
    second.take()
    assert second.generation == 2 and not first.mine() and second.mine()


def test_a_holder_that_was_taken_over_finds_out_at_its_next_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    frozen = ClaimFile(path)
    frozen.take()
    record = frozen.read()
    assert record is not None
    # As others see a holder frozen past its timeout:
    path.write_text(replace(record, node="elsewhere", heartbeat=time.time() - 60).to_json())
    ClaimFile(path).take()
    assert frozen.renew() is False and frozen.lost.is_set()
    frozen.release()  # must not free the successor's claim
    successor = ClaimFile(path).read()
    assert successor is not None and not successor.released and successor.generation == 2


def test_the_heartbeat_keeps_a_short_claim_alive(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    holder = ClaimFile(path, stale_after=0.4)
    holder.take()
    first = holder.read()
    assert first is not None
    with holder.renewed():
        deadline = time.monotonic() + 30
        while (now := holder.read()) is not None and now.heartbeat == first.heartbeat:
            assert time.monotonic() < deadline, "no heartbeat was written"
            time.sleep(0.02)
        record = holder.read()
        assert record is not None
        # Judged as another node would, right after a heartbeat: alive.
        assert not replace(record, node="elsewhere").stale(time.time(), "here")
    assert not holder.lost.is_set()


def test_an_abandoned_takeover_ticket_is_skipped_and_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    foreign(path, heartbeat_age=31.0, generation=1)
    ticket = tmp_path / "x.claim.2.takeover"
    ticket.write_text("a taker that died\n")
    os.utime(ticket, (time.time() - 120, time.time() - 120))
    claim = ClaimFile(path)
    claim.take()
    assert claim.generation == 3
    assert [p.name for p in tmp_path.iterdir()] == ["x.claim"]


def test_a_live_takeover_ticket_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    foreign(path, heartbeat_age=31.0, generation=1)
    (tmp_path / "x.claim.2.takeover").write_text("a taker at work\n")
    with pytest.raises(Held):
        ClaimFile(path).take()


def test_a_damaged_record_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "x.claim"
    path.write_bytes(b"\x00garbage")
    claim = ClaimFile(path)
    claim.take()
    assert claim.mine()


def test_the_timeout_comes_from_the_environment() -> None:
    assert stale_after_from_env({TIMEOUT_ENV: "2.5"}) == 2.5
    assert stale_after_from_env({TIMEOUT_ENV: "soon"}) == DEFAULT_STALE_AFTER
    assert stale_after_from_env({TIMEOUT_ENV: "0"}) == DEFAULT_STALE_AFTER
    assert stale_after_from_env({}) == DEFAULT_STALE_AFTER


LOST = 3


def _race(path: str, start: Any, judged: Any) -> None:
    """One taker: exits 0 when it won the claim, :data:`LOST` when told it is held."""
    claim = ClaimFile(Path(path))
    start.wait()
    try:
        claim.take()
        code = 0
    except Held:
        code = LOST
    judged.wait()  # the winner stays alive until every taker has judged: its pid is live
    sys.exit(code)


@pytest.mark.parametrize("existing", ["none", "stale"])
def test_of_many_takers_at_once_exactly_one_wins(tmp_path: Path, existing: str) -> None:
    context = multiprocessing.get_context("fork")
    takers = 6
    for round_ in range(8):
        path = tmp_path / f"race-{round_}.claim"
        if existing == "stale":
            foreign(path, heartbeat_age=31.0)
        start, judged = context.Barrier(takers), context.Barrier(takers)
        procs = [
            context.Process(target=_race, args=(str(path), start, judged)) for _ in range(takers)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        codes = sorted(p.exitcode for p in procs if p.exitcode is not None)
        assert codes == [0] + [LOST] * (takers - 1), (round_, codes)

"""How many connections a file fetched as ranges holds open, as the hub sees them: more while
each one waits on the hub, never more than the file may have."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from controller.hub import ranged
from controller.hub.connections import ConnectionBudget
from controller.hub.transfer import FileRef, RetryPolicy, fetch
from tests.support.hub import LocalHub

REPO = "org/held-back"
KIB, MIB = 1024, 1024 * 1024
DATA = random.Random(61).randbytes(3 * MIB)
SHA = hashlib.sha256(DATA).hexdigest()
FAST = RetryPolicy(attempts=4, base=0.05, cap=0.2)
# Slow enough that every connection spends most of its time waiting for bytes (a CDN's
# per-connection cap), fast enough that the file takes about a second over four.
PER_CONNECTION = 1_000_000


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges from 1 MiB on, six pieces of 512 KiB."""
    monkeypatch.setattr(ranged, "RANGED_ABOVE", MIB)
    monkeypatch.setattr(ranged, "PIECE_SIZE", 512 * KIB)
    monkeypatch.setattr(ranged, "RECORD_EVERY", 128 * KIB)


def fetch_held_back(
    hub: LocalHub, cache: Path, connections_per_file: int, budget: ConnectionBudget
) -> None:
    commit = hub.publish(REPO, {"model.safetensors": DATA})
    hub.faults.throttle("*/model.safetensors", PER_CONNECTION, times=None)
    result = fetch(
        FileRef(REPO, "model.safetensors", commit, etag=SHA, size=len(DATA)),
        cache_dir=cache,
        endpoint=hub.url,
        retry=FAST,
        connections_per_file=connections_per_file,
        connection_budget=budget,
    )
    assert result.digest == SHA and result.blob.read_bytes() == DATA
    sent = sum(r.bytes_sent for r in hub.requests_for("*/model.safetensors", "GET"))
    assert sent == len(DATA)  # every byte fetched once, whatever the connections


def connections_at_once(hub: LocalHub) -> int:
    """The most GETs the hub was answering at the midpoint of one of them.

    A client can send its next request on another pooled connection a moment before the
    handler of the one it just read logs its end; a midpoint never falls in that moment.
    """
    gets = hub.requests_for("*/model.safetensors", "GET")
    midpoints = [r.started + r.seconds / 2 for r in gets]
    return max(sum(r.started <= at < r.started + r.seconds for r in gets) for at in midpoints)


@pytest.mark.parametrize("connections_per_file", [2, 4])
def test_a_hub_that_holds_each_connection_back_gets_every_connection_the_file_may_have(
    hub: LocalHub, hf_cache: Path, connections_per_file: int
) -> None:
    budget = ConnectionBudget(8)
    fetch_held_back(hub, hf_cache, connections_per_file, budget)
    assert connections_at_once(hub) == connections_per_file
    assert budget.open == 0  # every connection handed back


def test_a_file_just_above_the_threshold_gives_each_connection_one_piece(
    hub: LocalHub, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ranged, "PIECE_SIZE", 4 * MIB)
    data = DATA + b"odd"  # a size four connections do not divide
    commit = hub.publish(REPO, {"model.safetensors": data})
    result = fetch(
        FileRef(
            REPO, "model.safetensors", commit, etag=hashlib.sha256(data).hexdigest(), size=len(data)
        ),
        cache_dir=hf_cache,
        endpoint=hub.url,
        retry=FAST,
        connections_per_file=4,
        connection_budget=ConnectionBudget(8),
    )
    assert result.blob.read_bytes() == data
    piece = -(-len(data) // 4)
    expected = [f"bytes={a}-{min(a + piece, len(data)) - 1}" for a in range(0, len(data), piece)]
    asked = [r.range for r in hub.requests_for("*/model.safetensors", "GET")]
    assert sorted(a or "" for a in asked) == sorted(expected)

"""A file fetched as byte ranges, against a hub whose answers to each ranged GET are scripted
(:mod:`tests.support.scripted_hub`): the pieces asked for, the validator sent with them, a
range that ends early or fails, and every answer that sends the file back to one connection
-- each judged by what reached the cache, the error or warning, and what the hub was asked.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.domain import Reason
from controller.hub import ranged
from controller.hub.connections import ConnectionBudget
from controller.hub.ranges import Span
from controller.hub.revisions import HubError
from controller.hub.transfer import Fetched, FileRef, RetryPolicy, fetch
from tests.support.scripted_hub import Answer, ScriptedHub, serving

REPO = "org/ranged"
KIB = 1024
DATA = random.Random(51).randbytes(300_000)
SHA = hashlib.sha256(DATA).hexdigest()
COMMIT = "d" * 40
PIECE = 64 * KIB
FAST = RetryPolicy(attempts=4, base=0.0, cap=0.0)
PIECES = [Span(a, min(a + PIECE, len(DATA))).header for a in range(0, len(DATA), PIECE)]


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges from 100 KiB on, in pieces of 64 KiB."""
    monkeypatch.setattr(ranged, "RANGED_ABOVE", 100 * KIB)
    monkeypatch.setattr(ranged, "PIECE_SIZE", PIECE)
    monkeypatch.setattr(ranged, "RECORD_EVERY", 16 * KIB)


@pytest.fixture
def scripted() -> Iterator[ScriptedHub]:
    with serving(DATA, COMMIT) as hub:
        yield hub


def do_fetch(hub: ScriptedHub, cache: Path, retry: RetryPolicy = FAST) -> Fetched:
    return fetch(
        FileRef(REPO, "model.safetensors", COMMIT, etag=SHA, size=len(DATA)),
        cache_dir=cache,
        endpoint=hub.url,
        retry=retry,
        connections_per_file=4,
        connection_budget=ConnectionBudget(8),
    )


def assert_published(fetched: Fetched) -> None:
    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA
    assert not [p.name for p in fetched.blob.parent.iterdir() if ".incomplete" in p.name]


def fallback_notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "over one connection" in r.getMessage()]


def test_the_file_is_asked_for_piece_by_piece_with_its_validator(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    fetched = do_fetch(scripted, hf_cache)

    assert_published(fetched)
    assert sorted(scripted.ranges(), key=str) == sorted(PIECES, key=str)
    assert fetched.transferred == len(DATA)
    validators = [v for _, v in scripted.asked]
    # Once the first answer named the file's strong ETag, every later range is conditional.
    assert validators[-1] == f'"{SHA}"'
    assert set(validators) <= {None, f'"{SHA}"'}


def test_a_weak_etag_is_not_sent_back_as_a_validator(scripted: ScriptedHub, hf_cache: Path) -> None:
    scripted.script(*[Answer(etag='W/"weak"')] * len(PIECES))

    assert_published(do_fetch(scripted, hf_cache))

    assert [v for _, v in scripted.asked] == [None] * len(PIECES)


def test_ranges_without_an_etag_are_fetched_without_a_validator(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    scripted.script(*[Answer(sends_etag=False)] * len(PIECES))

    assert_published(do_fetch(scripted, hf_cache))

    assert sorted(scripted.ranges(), key=str) == sorted(PIECES, key=str)
    assert [v for _, v in scripted.asked] == [None] * len(PIECES)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (Answer(status=403), "the hub forbade a ranged GET (HTTP 403)"),
        (Answer(status=416), "the hub refused a ranged GET (HTTP 416)"),
        (Answer(status=429), "the hub rate-limited a ranged GET (HTTP 429)"),
        (Answer(status=200), "the hub ignored Range (HTTP 200)"),
        (
            Answer(first=0),
            f"the hub answered bytes 0-{PIECE - 1}/{len(DATA)} (HTTP 206) "
            f"to a GET of {PIECE}-{2 * PIECE - 1}",
        ),
        (
            Answer(total="7"),
            f"the hub answered bytes {PIECE}-{2 * PIECE - 1}/7 (HTTP 206) "
            f"to a GET of {PIECE}-{2 * PIECE - 1}",
        ),
        (Answer(etag='"another"'), "the file's ETag changed between ranges"),
    ],
    ids=["403", "416", "429", "200", "another start", "another total", "another etag"],
)
def test_a_second_range_refused_sends_the_rest_over_one_connection(
    scripted: ScriptedHub,
    hf_cache: Path,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    says: str,
) -> None:
    scripted.script(Answer(), answer)

    with caplog.at_level(logging.WARNING, "modelsync.transfer"):
        fetched = do_fetch(scripted, hf_cache)

    assert_published(fetched)
    (note,) = fallback_notes(caplog)
    assert note.endswith(f": {says}; fetching it over one connection")
    # The first piece was kept: the one connection continues after it.
    assert scripted.ranges()[:2] == PIECES[:2] and scripted.ranges()[-1] == f"bytes={PIECE}-"


def test_a_range_that_ends_early_is_asked_for_from_where_it_ended(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    scripted.script(Answer(length=1000))

    fetched = do_fetch(scripted, hf_cache)

    assert scripted.ranges()[:2] == [PIECES[0], f"bytes=1000-{PIECE - 1}"]
    assert fetched.transferred == len(DATA)
    assert_published(fetched)


def test_a_range_that_always_ends_early_fails_saying_where(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    scripted.script(Answer(length=1000))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, retry=RetryPolicy(attempts=1))

    assert caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    where = f"{REPO}@{COMMIT[:12]}:model.safetensors"
    assert caught.value.message.startswith(f"{where}: a range ended at byte 1000 of 0-{PIECE}")


def test_a_server_error_on_a_range_is_retried_for_that_range(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    scripted.script(Answer(), Answer(status=503))

    fetched = do_fetch(scripted, hf_cache)

    assert scripted.ranges()[:3] == [PIECES[0], PIECES[1], PIECES[1]]
    assert_published(fetched)


def test_a_missing_file_on_a_range_is_final(scripted: ScriptedHub, hf_cache: Path) -> None:
    scripted.script(Answer(status=404))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache)

    assert not caught.value.transient
    assert scripted.ranges() == [PIECES[0]]
    assert not (hf_cache / "models--org--ranged" / "blobs" / SHA).exists()


def test_a_bad_request_on_a_range_is_final_not_a_refusal(
    scripted: ScriptedHub, hf_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.script(Answer(status=400))

    with caplog.at_level(logging.WARNING, "modelsync.transfer"), pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache)

    assert not caught.value.transient
    assert not fallback_notes(caplog)
    assert scripted.ranges() == [PIECES[0]]


def test_bytes_sent_past_a_range_do_not_land_in_the_file(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    # The range that ends early is asked for again from byte 1000: its reads no longer end
    # where the chunks do, so the last one would run into the extra bytes if let.
    scripted.script(Answer(length=1000), Answer(extra=b"\0" * 1000))

    assert_published(do_fetch(scripted, hf_cache))
    assert scripted.ranges()[:2] == [PIECES[0], f"bytes=1000-{PIECE - 1}"]

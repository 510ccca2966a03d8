"""How a download reads the hub's answers to its GETs: where a 206 starts and what total it
names, a body that ends early or runs past the size announced, the validator a resume sends,
a refused range, and an answer no download expects -- for the stable partial of any file and
for a small file fetched whole into its writer's own partial.

The hub here is a real HTTP server scripted per GET (:mod:`tests.support.scripted_hub`);
every assertion is about what reached the cache, the error raised, or what the hub was asked.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.domain import Reason
from controller.hub.revisions import HubError
from controller.hub.transfer import Fetched, FileRef, RetryPolicy, fetch
from tests.support.scripted_hub import Answer, ScriptedHub, serving

REPO = "org/scripted"
DATA = random.Random(31).randbytes(300_000)  # small enough to be fetched whole when asked
SHA = hashlib.sha256(DATA).hexdigest()
COMMIT = "c" * 40
FAST = RetryPolicy(attempts=4, base=0.0, cap=0.0)
HALF = len(DATA) // 2


@pytest.fixture
def scripted() -> Iterator[ScriptedHub]:
    with serving(DATA, COMMIT) as hub:
        yield hub


def blobs(cache: Path) -> Path:
    return cache / "models--org--scripted" / "blobs"


def do_fetch(
    hub: ScriptedHub, cache: Path, *, whole: bool = False, retry: RetryPolicy = FAST
) -> Fetched:
    ref = FileRef(REPO, "model.safetensors", COMMIT, etag=SHA, size=len(DATA))
    return fetch(ref, cache_dir=cache, endpoint=hub.url, retry=retry, private_small_files=whole)


def write_partial(cache: Path, data: bytes) -> None:
    """The stable partial and sidecar an earlier, killed process left."""
    folder = blobs(cache)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{SHA}.incomplete").write_bytes(data)
    record = {"version": 1, "etag": SHA, "size": len(DATA), "commit": COMMIT}
    (folder / f"{SHA}.incomplete.json").write_text(json.dumps(record))


def cache_files(cache: Path) -> list[str]:
    folder = blobs(cache)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_published(fetched: Fetched, cache: Path) -> None:
    assert fetched.digest == SHA and fetched.blob.read_bytes() == DATA
    assert fetched.snapshot.read_bytes() == DATA
    assert cache_files(cache) == [SHA]  # no partial, no sidecar left


# --------------------------------------------------------------------------- where a 206 starts


@pytest.mark.parametrize(
    "answer",
    [Answer(first=0), Answer(first=HALF + 1), Answer(total=str(len(DATA) + 1))],
    ids=["from byte 0", "one byte late", "another total"],
)
def test_a_206_that_does_not_continue_the_partial_starts_it_over(
    scripted: ScriptedHub, hf_cache: Path, answer: Answer
) -> None:
    write_partial(hf_cache, DATA[:HALF])
    scripted.script(answer)

    fetched = do_fetch(scripted, hf_cache)

    # The mismatched tail is never written after the prefix: the next GET is for all of it.
    assert [r for r, _ in scripted.asked] == [f"bytes={HALF}-", None]
    assert fetched.transferred == len(DATA)
    assert_published(fetched, hf_cache)


def test_a_206_that_does_not_continue_the_partial_says_what_it_sent(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    write_partial(hf_cache, DATA[:HALF])
    scripted.script(Answer(first=0))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, retry=RetryPolicy(attempts=1))

    assert caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    assert (
        f"the hub sent bytes from 0 of {len(DATA)}, not from {HALF} of {len(DATA)}; "
        "starting over" in caught.value.message
    )
    assert (blobs(hf_cache) / f"{SHA}.incomplete").stat().st_size == 0  # started over


def test_a_206_without_a_total_continues_the_partial(scripted: ScriptedHub, hf_cache: Path) -> None:
    write_partial(hf_cache, DATA[:HALF])
    scripted.script(Answer(total="*"))

    fetched = do_fetch(scripted, hf_cache)

    assert [r for r, _ in scripted.asked] == [f"bytes={HALF}-"]
    assert fetched.resumed_from == HALF and fetched.transferred == len(DATA) - HALF
    assert_published(fetched, hf_cache)


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_success_no_download_expects_is_final(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(status=202))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, whole=whole)

    assert not caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    assert caught.value.message.endswith("unexpected HTTP 202 for a download")
    assert len(scripted.asked) == 1
    assert SHA not in cache_files(hf_cache)


# --------------------------------------------------------------------------- body length


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_body_longer_than_announced_is_discarded(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(extra=b"trailing garbage"))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, whole=whole)

    assert caught.value.reason is Reason.SIZE_MISMATCH and not caught.value.transient
    named = f"{REPO}@{COMMIT[:12]}:model.safetensors" if whole else "model.safetensors"
    assert caught.value.message == (
        f"{named}: the hub sent more than the {len(DATA)} bytes it announced; "
        "the download was discarded"
    )
    assert len(scripted.asked) == 1
    assert cache_files(hf_cache) == []  # nothing published, nothing kept to resume


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_body_that_ends_early_is_continued_from_where_it_ended(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(length=HALF))

    fetched = do_fetch(scripted, hf_cache, whole=whole)

    assert [r for r, _ in scripted.asked] == [None, f"bytes={HALF}-"]
    assert fetched.transferred == len(DATA)
    assert_published(fetched, hf_cache)


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_body_that_always_ends_early_fails_saying_how_far_it_got(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(length=HALF))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, whole=whole, retry=RetryPolicy(attempts=1))

    assert caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    where = f"{REPO}@{COMMIT[:12]}:model.safetensors"
    assert f"{where}: the body ended after {HALF} of {len(DATA)} bytes" in caught.value.message


# --------------------------------------------------------------------------- resuming


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_resume_sends_the_strong_etag_the_first_answer_gave(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(length=HALF, etag='"v1"'))

    assert_published(do_fetch(scripted, hf_cache, whole=whole), hf_cache)

    assert scripted.asked == [(None, None), (f"bytes={HALF}-", '"v1"')]


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_resume_after_a_weak_etag_sends_no_validator(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(length=HALF, etag='W/"v1"'))

    assert_published(do_fetch(scripted, hf_cache, whole=whole), hf_cache)

    assert scripted.asked == [(None, None), (f"bytes={HALF}-", None)]


def test_a_partial_continued_from_an_earlier_run_sends_its_validator(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    write_partial(hf_cache, DATA[:HALF])
    sidecar = blobs(hf_cache) / f"{SHA}.incomplete.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "validator": '"v0"'}))

    assert_published(do_fetch(scripted, hf_cache), hf_cache)

    assert scripted.asked == [(f"bytes={HALF}-", '"v0"')]


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_refused_range_starts_the_file_over(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    if whole:  # a small file's partial is its writer's own: cut it short in this run
        scripted.script(Answer(length=HALF, etag='"v1"'), Answer(status=416))
    else:
        write_partial(hf_cache, DATA[:HALF])
        scripted.script(Answer(status=416))

    fetched = do_fetch(scripted, hf_cache, whole=whole)

    # Started over: neither the range nor the validator of the bytes dropped is sent again.
    assert scripted.asked[-1] == (None, None)
    assert [r for r, _ in scripted.asked][-2:] == [f"bytes={HALF}-", None]
    assert_published(fetched, hf_cache)


def test_a_refused_range_says_it_starts_over(scripted: ScriptedHub, hf_cache: Path) -> None:
    write_partial(hf_cache, DATA[:HALF])
    scripted.script(Answer(status=416))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, retry=RetryPolicy(attempts=1))

    assert caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    assert "the hub refused the range; starting over" in caught.value.message
    assert (blobs(hf_cache) / f"{SHA}.incomplete").stat().st_size == 0


def test_a_200_to_a_resume_replaces_the_prefix(scripted: ScriptedHub, hf_cache: Path) -> None:
    write_partial(hf_cache, b"\x00" * HALF)  # wrong bytes: only a restart can make it right
    scripted.script(Answer(status=200))

    fetched = do_fetch(scripted, hf_cache)

    assert [r for r, _ in scripted.asked] == [f"bytes={HALF}-"]
    assert_published(fetched, hf_cache)


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_server_error_whose_body_is_not_text_is_retried(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    # A proxy's or a CDN's error page in no UTF encoding: judged by its status alone.
    scripted.script(Answer(status=500))

    fetched = do_fetch(scripted, hf_cache, whole=whole)

    assert scripted.ranges() == [None, None]
    assert_published(fetched, hf_cache)


@pytest.mark.parametrize("whole", [False, True], ids=["stable partial", "small file"])
def test_a_client_error_whose_body_is_not_text_is_final(
    scripted: ScriptedHub, hf_cache: Path, whole: bool
) -> None:
    scripted.script(Answer(status=410))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, whole=whole)

    assert not caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    assert caught.value.message.endswith("unexpected HTTP 410 for a download")
    assert scripted.ranges() == [None]


# --------------------------------------------------------------------------- a small file's GET


def test_a_small_file_is_named_by_its_get_alone_as_the_hub_names_a_plain_file(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    # No X-Linked-* headers: the digest is the ETag (weak, quoted), the size the length.
    scripted.script(Answer(linked=False, etag=f'W/"{SHA}"'))

    assert_published(do_fetch(scripted, hf_cache, whole=True), hf_cache)


def test_a_small_file_whose_get_names_another_size_is_refused(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    scripted.script(Answer(linked=False, extra=b"more"))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, whole=True)

    assert not caught.value.transient
    assert f"{len(DATA) + 4} bytes instead of {len(DATA)}; plan again" in caught.value.message
    assert cache_files(hf_cache) == []


def test_a_small_file_whose_get_names_no_commit_is_refused(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    scripted.script(Answer(names_commit=False))

    with pytest.raises(HubError) as caught:
        do_fetch(scripted, hf_cache, whole=True)

    assert not caught.value.transient and caught.value.reason is Reason.DOWNLOAD_FAILED
    assert "did not send X-Repo-Commit and an ETag" in caught.value.message
    assert cache_files(hf_cache) == []


def test_a_small_file_cut_midway_is_continued_when_the_206_names_no_size(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    # A file kept in git: no X-Linked-Size, and a 206's length is not the file's, so the
    # plan's size is the one the resumed answer is checked against.
    scripted.script(Answer(linked=False, cut=HALF), Answer(linked=False))

    fetched = do_fetch(scripted, hf_cache, whole=True)

    assert scripted.ranges() == [None, f"bytes={HALF}-"]
    assert_published(fetched, hf_cache)


def test_a_resumed_answer_gives_the_validator_for_the_next_resume(
    scripted: ScriptedHub, hf_cache: Path
) -> None:
    write_partial(hf_cache, DATA[:HALF])  # from a run that kept no validator
    scripted.script(Answer(etag='"v2"', cut=1000))

    assert_published(do_fetch(scripted, hf_cache), hf_cache)

    assert scripted.asked == [(f"bytes={HALF}-", None), (f"bytes={HALF + 1000}-", '"v2"')]

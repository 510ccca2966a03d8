"""Edges of the transfer's value modules that one-line changes slipped past: how many tries a
step gets and when they stop counting (retry), which bytes of a file are still missing
(ranges), and which sidecars are trusted to continue a partial (sidecar).

Each table row is an outcome a mutation of that module once left unchanged while every
other test stayed green.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from controller.domain import Reason
from controller.hub import sidecar
from controller.hub.errors import HubError
from controller.hub.ranges import Span, added, content_range, merged, missing, pieces, prefix_end
from controller.hub.retry import Attempts, RetryPolicy
from controller.hub.sidecar import Sidecar
from controller.system.cancel import Cancelled, StopSignal


def no_wait(attempts: int = 6) -> RetryPolicy:
    """No waits between tries: these tests count tries, test_backoff.py tests the waits."""
    return RetryPolicy(attempts=attempts, base=0.0, cap=0.0)


def spans(*pairs: tuple[int, int]) -> tuple[Span, ...]:
    return tuple(Span(a, b) for a, b in pairs)


class FlakyStep:
    """A step that fails ``failures`` times with ``error`` before it returns ``"done"``."""

    def __init__(self, failures: int, error: HubError) -> None:
        self.failures = failures
        self.error = error
        self.tries = 0

    def __call__(self) -> str:
        self.tries += 1
        if self.tries <= self.failures:
            raise OSError("connection reset")
        return "done"

    def classify(self, _: Exception) -> HubError:
        return self.error


def transient() -> HubError:
    return HubError(Reason.DOWNLOAD_FAILED, "503 from the hub", transient=True)


# --------------------------------------------------------------------------- retry


@pytest.mark.parametrize(
    "settings",
    [{"attempts": 1}, {"base": 0.0}, {"cap": 0.0}, {"max_retry_after": 0.0}],
)
def test_the_smallest_policies_are_accepted(settings: dict[str, float]) -> None:
    RetryPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"attempts": 0}, "a retry policy needs at least one attempt"),
        ({"cap": -0.5}, "retry delays cannot be negative"),
    ],
)
def test_a_refused_policy_says_why(settings: dict[str, float], says: str) -> None:
    with pytest.raises(ValueError, match=f"^{says}$"):
        RetryPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 0.0), (60.0, 60.0), (60.5, 60.0), (0.25, 0.25)]
)
def test_a_retry_after_at_the_edges(retry_after: float, expected: float) -> None:
    assert RetryPolicy().delay(3, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    ("attempts", "failures", "tries", "gives_up"),
    [
        (1, 0, 1, False),
        (1, 1, 1, True),  # one attempt: the first failure is the last
        (3, 2, 3, False),
        (3, 3, 3, True),
        (3, 7, 3, True),
    ],
)
def test_a_step_gets_exactly_the_policy_attempts(
    attempts: int, failures: int, tries: int, gives_up: bool
) -> None:
    step = FlakyStep(failures, transient())
    counter = Attempts(no_wait(attempts))

    if gives_up:
        with pytest.raises(HubError) as caught:
            counter.until_done(step, step.classify, (OSError,))
        assert caught.value.message == f"503 from the hub (gave up after {attempts} attempts)"
        assert caught.value.reason is Reason.DOWNLOAD_FAILED and caught.value.transient
    else:
        assert counter.until_done(step, step.classify, (OSError,)) == "done"
    assert step.tries == tries


def test_a_final_error_is_raised_as_it_is_after_one_try() -> None:
    final = HubError(Reason.ACCESS_DENIED, "403: accept the licence", transient=False)
    step = FlakyStep(5, final)

    with pytest.raises(HubError) as caught:
        Attempts(no_wait()).until_done(step, step.classify, (OSError,))

    assert caught.value is final and step.tries == 1


def test_failures_of_other_kinds_are_not_retried() -> None:
    step = FlakyStep(1, transient())
    with pytest.raises(OSError):
        Attempts(no_wait()).until_done(step, step.classify, (ValueError,))
    assert step.tries == 1


def test_progress_between_failures_starts_the_count_again() -> None:
    counter = Attempts(no_wait(2))
    tries = 0

    def arrives_in_pieces() -> str:
        # Each try delivers some bytes, then the connection drops: a flaky link that still
        # moves the download forward must not run out of attempts.
        nonlocal tries
        tries += 1
        if tries <= 5:
            counter.progressed()
            raise OSError("connection reset")
        return "done"

    assert counter.until_done(arrives_in_pieces, lambda _: transient(), (OSError,)) == "done"
    assert tries == 6


@pytest.mark.parametrize(
    "error",
    [
        transient(),
        # A stop shuts the model's sockets: the failure it causes reads as final, or as the
        # last attempt, and must still be reported as the stop it is.
        HubError(Reason.DOWNLOAD_FAILED, "connection closed", transient=False),
    ],
)
@pytest.mark.parametrize("attempts", [1, 6])
def test_a_stopped_model_does_not_try_again(error: HubError, attempts: int) -> None:
    signal = StopSignal()
    signal.stop_model("org/model")
    step = FlakyStep(1, error)

    with pytest.raises(Cancelled):
        Attempts(no_wait(attempts), signal.for_model("org/model")).until_done(
            step, step.classify, (OSError,)
        )
    assert step.tries == 1


def test_a_running_model_waits_through_its_stop_and_tries_again() -> None:
    signal = StopSignal()
    signal.stop_model("another/model")
    step = FlakyStep(2, transient())

    counter = Attempts(no_wait(), signal.for_model("org/model"))
    started = time.monotonic()

    assert counter.until_done(step, step.classify, (OSError,)) == "done"
    assert step.tries == 3
    assert time.monotonic() - started < 10.0  # waits of zero seconds, however loaded


def test_a_stop_cuts_a_backoff_wait_short() -> None:
    signal = StopSignal()
    server_says_wait = HubError(
        Reason.DOWNLOAD_FAILED, "429 from the hub", transient=True, retry_after=30.0
    )
    step = FlakyStep(1, server_says_wait)
    # Whenever the stop lands (before the wait or during it) the outcome is the same: the
    # model stops well before the 30 s the server asked for.
    stopper = threading.Timer(0.2, signal.stop_model, args=("org/model",))
    started = time.monotonic()
    stopper.start()
    try:
        with pytest.raises(Cancelled):
            Attempts(RetryPolicy(), signal.for_model("org/model")).until_done(
                step, step.classify, (OSError,)
            )
    finally:
        stopper.cancel()
    assert time.monotonic() - started < 10.0
    assert step.tries == 1


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("done", "size", "gaps"),
    [
        (((12, 20),), 10, ((0, 10),)),  # bytes past the end hold nothing of the file
        (((0, 4), (10, 14)), 10, ((4, 10),)),
        (((5, 15),), 10, ((0, 5),)),
        (((0, 2), (2, 4)), 4, ()),
        ((), 0, ()),
    ],
)
def test_missing_at_the_end_of_the_file(
    done: tuple[tuple[int, int], ...], size: int, gaps: tuple[tuple[int, int], ...]
) -> None:
    assert missing(merged(spans(*done)), size) == spans(*gaps)


@pytest.mark.parametrize(
    ("held", "span", "expected"),
    [
        (((0, 10),), (2, 5), ((0, 10),)),  # a span inside another changes nothing
        (((0, 4),), (4, 8), ((0, 8),)),
        (((0, 4),), (5, 8), ((0, 4), (5, 8))),  # a one-byte gap stays a gap
        ((), (3, 3), ()),
    ],
)
def test_added(
    held: tuple[tuple[int, int], ...], span: tuple[int, int], expected: tuple[tuple[int, int], ...]
) -> None:
    assert added(spans(*held), Span(*span)) == spans(*expected)


@pytest.mark.parametrize(
    ("held", "prefix"), [((), 0), (((0, 1),), 1), (((1, 9),), 0), (((0, 3), (4, 9)), 3)]
)
def test_prefix_end(held: tuple[tuple[int, int], ...], prefix: int) -> None:
    assert prefix_end(spans(*held)) == prefix


def test_pieces_of_one_byte_and_of_none() -> None:
    assert pieces(spans((0, 3)), 1) == spans((0, 1), (1, 2), (2, 3))
    with pytest.raises(ValueError, match="^a piece holds at least one byte$"):
        pieces(spans((0, 3)), 0)
    with pytest.raises(ValueError, match="^not a byte span: 5-4$"):
        Span(5, 4)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", (None, None, None)),
        ("bytes 0-0/1", (0, 0, 1)),
        ("bytes  7 - 9 / 10", (7, 9, 10)),  # spaces around the numbers are tolerated
        ("bytes 0-x/10", (0, None, 10)),
    ],
)
def test_content_range_edges(header: str, expected: tuple[int | None, ...]) -> None:
    assert content_range(header) == expected


# --------------------------------------------------------------------------- sidecar


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2, "etag": "", "size": 5},  # an empty etag names no blob
        {"version": 2, "etag": 7, "size": 5},
        {"version": 2, "size": 5},
        {"version": 2, "etag": "a"},
        {"version": 2, "etag": "a", "size": True},  # JSON true is not a byte count
        {"version": 2, "etag": "a", "size": "5"},
        {"version": 2, "etag": "a", "size": 5, "done": [[1, 2, 3]]},
        {"version": 2, "etag": "a", "size": 5, "done": [1, 2]},
        {"version": 2, "etag": "a", "size": 5, "done": [[0, -1]]},
        {"version": 2, "etag": "a", "size": 5, "validator": 3},
        {"version": 0, "etag": "a", "size": 5},
        {"etag": "a", "size": 5},
    ],
)
def test_a_sidecar_with_a_bad_field_is_not_trusted(tmp_path: Path, document: object) -> None:
    path = tmp_path / "x.incomplete.json"
    path.write_text(json.dumps(document))
    assert sidecar.read(path) is None


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"version": 2, "etag": "a", "size": 0}, Sidecar("", "", "", "a", 0)),
        (
            {"version": 2, "etag": "a", "size": 9, "done": [[4, 6], [0, 2], [2, 3]]},
            Sidecar("", "", "", "a", 9, None, spans((0, 3), (4, 6))),
        ),
    ],
)
def test_an_empty_file_and_unsorted_spans_are_read_back(
    tmp_path: Path, document: object, expected: Sidecar
) -> None:
    path = tmp_path / "x.incomplete.json"
    path.write_text(json.dumps(document))
    assert sidecar.read(path) == expected


def test_a_sidecar_that_cannot_replace_the_old_one_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "x.incomplete.json"
    path.mkdir()  # a rename over a directory fails

    with pytest.raises(OSError):
        sidecar.write(path, Sidecar("r", "p", "c", "a", 5), durable=False)

    assert [p.name for p in tmp_path.iterdir()] == ["x.incomplete.json"]
    assert path.is_dir() and not any(path.iterdir())

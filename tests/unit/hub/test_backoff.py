"""The retry policy's waits, observed: drawn values of ``RetryPolicy.delay`` and the time a
real fetch against the local hub spends between its attempts.

Retries without waits hammer a failing hub and give up within milliseconds on a blip that
a second's pause would have outlasted, with every other test still green; these tests fail
when the waits shrink to nothing or grow past their bound.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.cache.hashing import HashKind, digest_bytes
from controller.hub.transfer import FileRef, RetryPolicy, fetch
from tests.support.hub import LocalHub

REPO = "org/model"
CONFIG = b'{"model_type": "tiny"}\n'
# How much longer than its waits a fetch of a few bytes may take on a loaded machine.
SLACK_S = 10.0


@pytest.mark.parametrize("failures", [1, 2, 3, 4, 6, 12])
def test_backoff_waits_spread_up_to_the_exponential_bound(failures: int) -> None:
    policy = RetryPolicy(base=0.5, cap=4.0)
    bound = min(4.0, 0.5 * 2 ** (failures - 1))
    waits = [policy.delay(failures) for _ in range(400)]

    # Full jitter: every wait within [0, bound] and spread over all of it (400 uniform draws
    # whose maximum is below 0.9 * bound, or whose mean is off by 0.1 * bound, have odds
    # below 1e-12).
    assert all(0.0 <= w <= bound for w in waits)
    assert max(waits) >= 0.9 * bound
    assert abs(sum(waits) / len(waits) - bound / 2) <= 0.1 * bound


def test_a_retry_after_is_honoured_up_to_the_policy_limit() -> None:
    policy = RetryPolicy(max_retry_after=5.0)
    assert policy.delay(1, retry_after=2.5) == 2.5
    assert policy.delay(1, retry_after=600.0) == 5.0
    assert policy.delay(1, retry_after=-3.0) == 0.0


@pytest.mark.parametrize(
    "settings", [{"attempts": 0}, {"base": -1.0}, {"cap": -1.0}, {"max_retry_after": -1.0}]
)
def test_a_policy_that_cannot_wait_or_try_is_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**settings)  # type: ignore[arg-type]


def test_retries_of_a_failing_file_are_spaced_by_the_backoff(hub: LocalHub, hf_cache: Path) -> None:
    commit = hub.publish(REPO, {"config.json": CONFIG})
    ref = FileRef(
        REPO,
        "config.json",
        commit,
        etag=digest_bytes(CONFIG, HashKind.GIT_BLOB_SHA1),
        size=len(CONFIG),
    )
    # Five failures, waits drawn up to 0.4, 0.8, 0.8, 0.8 and 0.8 s: their sum is below
    # 0.3 s with odds of about 1e-4.  The time the hub spent answering is taken out, so a
    # slow, loaded machine cannot stand in for a wait.
    policy = RetryPolicy(attempts=6, base=0.4, cap=0.8)
    hub.faults.fail("*/config.json", 503, method="GET", times=5)
    started = time.monotonic()

    fetched = fetch(ref, cache_dir=hf_cache, endpoint=hub.url, retry=policy)

    elapsed = time.monotonic() - started
    answered = hub.requests_for("*/config.json")
    assert [r.status for r in answered if r.method == "GET"] == [503] * 5 + [200]
    assert fetched.blob.read_bytes() == CONFIG
    waited = elapsed - sum(r.seconds for r in answered)
    assert 0.3 <= waited <= 0.4 + 4 * 0.8 + SLACK_S

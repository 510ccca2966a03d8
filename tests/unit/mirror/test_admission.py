"""Who may read a repo through the mirror: the upstream's answers, remembered for a while."""

from __future__ import annotations

import pytest

from controller.mirror.admission import (
    ALLOWED,
    AccessBook,
    Admission,
    OpenRepos,
    Verdict,
    token_key,
)
from controller.mirror.errors import HubError
from controller.mirror.upstream import UpstreamUnavailable


class Upstream:
    """An upstream's answers about access: who may read what, and whether it is reachable."""

    def __init__(self, gated: dict[str, set[str]]) -> None:
        self.gated = gated
        self.up = True
        self.asked = 0

    def check(self, repo: str, token: str | None) -> None:
        self.asked += 1
        if not self.up:
            raise UpstreamUnavailable("down")
        if repo in self.gated and token not in self.gated[repo]:
            raise HubError(401 if token is None else 403, "GatedRepo", f"{repo} is gated")


def _admission(upstream: Upstream, now: list[float]) -> Admission:
    return Admission(upstream.check, OpenRepos(), lambda: now[0], ttl=60.0)


def test_a_token_is_remembered_by_its_hash_only() -> None:
    assert "hf_secret" not in token_key("hf_secret")
    assert token_key(None) == "anonymous"
    book = AccessBook(ttl=10.0)
    book.remember("org/m", "hf_secret", ALLOWED, now=0.0)
    assert book.recall("org/m", "hf_secret", now=10.0) == ALLOWED
    assert book.recall("org/m", "hf_secret", now=10.5) is None
    assert book.recall("org/m", "hf_other", now=1.0) is None


def test_an_open_repo_needs_no_token() -> None:
    admission = _admission(Upstream({}), [0.0])
    admission.admit("org/open", None)


def test_a_gated_repo_is_refused_as_the_upstream_refuses_it() -> None:
    upstream = Upstream({"org/gated": {"hf_good"}})
    admission = _admission(upstream, [0.0])
    with pytest.raises(HubError) as anonymous:
        admission.admit("org/gated", None)
    assert (anonymous.value.status, anonymous.value.code) == (401, "GatedRepo")
    with pytest.raises(HubError) as wrong:
        admission.admit("org/gated", "hf_bad")
    assert wrong.value.status == 403
    admission.admit("org/gated", "hf_good")


def test_answers_are_reused_within_the_ttl_then_asked_again() -> None:
    upstream = Upstream({"org/gated": {"hf_good"}})
    now = [0.0]
    admission = _admission(upstream, now)
    admission.admit("org/gated", "hf_good")
    asked = upstream.asked
    admission.admit("org/gated", "hf_good")
    assert upstream.asked == asked
    now[0] = 61.0
    upstream.gated["org/gated"].clear()  # access revoked upstream
    with pytest.raises(HubError):
        admission.admit("org/gated", "hf_good")


def test_while_the_upstream_is_down_only_repos_known_open_are_served() -> None:
    upstream = Upstream({"org/gated": {"hf_good"}})
    admission = _admission(upstream, [0.0])
    admission.admit("org/open", None)
    upstream.up = False
    admission.book = AccessBook(ttl=60.0)  # every remembered answer expired
    admission.admit("org/open", None)
    with pytest.raises(HubError) as unknown:
        admission.admit("org/gated", "hf_good")
    assert unknown.value.status == 503


def test_a_verdict_says_whether_it_allows() -> None:
    assert ALLOWED.allowed
    assert not Verdict(HubError(403, "GatedRepo", "no")).allowed

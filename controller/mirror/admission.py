"""Who may read a repo through the mirror: exactly whom the upstream would let read it.

The mirror fetches with its own token, so without this a gated or private repo it once
filled would be served to anyone.  A repo is *open* when the upstream answers an anonymous
request for it; any other repo is served only to a client whose own token the upstream
accepts for it, asked with that token.  Answers are remembered for ``ttl`` seconds, keyed by
repo and a sha256 of the token, so the token itself is never kept; a refusal is answered to
the client exactly as the upstream gave it (status, ``X-Error-Code``), which huggingface_hub
turns into ``GatedRepoError`` or ``RepositoryNotFoundError``.

Whether a repo is open is also kept across restarts (:class:`OpenRepos`), so a public repo
stays served while the upstream is down; a restricted one is served then only to a token
accepted within ``ttl``, and never to one the mirror cannot check.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from controller.mirror.errors import HubError
from controller.mirror.upstream import UpstreamUnavailable

# Seconds an upstream's answer about access is trusted: long enough that a storm of
# requests from one node costs one check, short enough that a revoked token stops soon.
ACCESS_TTL = 60.0
MAX_REMEMBERED = 100_000  # answers kept at most; the oldest go first


@dataclass(frozen=True)
class Verdict:
    """The upstream's answer to one (repo, token): None when it may read, else the refusal."""

    refusal: HubError | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


ALLOWED = Verdict(None)


def token_key(token: str | None) -> str:
    """What an answer is remembered under: never the token itself."""
    if token is None:
        return "anonymous"
    return hashlib.sha256(token.encode()).hexdigest()


class AccessBook:
    """Answers about access, each trusted for ``ttl`` seconds after it was learned."""

    def __init__(self, ttl: float = ACCESS_TTL) -> None:
        self.ttl = ttl
        self._answers: dict[tuple[str, str], tuple[Verdict, float]] = {}
        self._lock = threading.Lock()

    def recall(self, repo: str, token: str | None, now: float) -> Verdict | None:
        with self._lock:
            found = self._answers.get((repo, token_key(token)))
        if found is None or now - found[1] > self.ttl:
            return None
        return found[0]

    def remember(self, repo: str, token: str | None, verdict: Verdict, now: float) -> None:
        with self._lock:
            if len(self._answers) >= MAX_REMEMBERED:
                oldest = min(self._answers, key=lambda k: self._answers[k][1])
                del self._answers[oldest]
            self._answers[(repo, token_key(token))] = (verdict, now)


class OpenRepos:
    """Repos the upstream answered anonymously, as last learned; persisted by the caller."""

    def __init__(self, known: dict[str, bool] | None = None) -> None:
        self._open = dict(known or {})
        self._lock = threading.Lock()

    def learn(self, repo: str, is_open: bool) -> bool:
        """Record an answer; True when it changed what was known."""
        with self._lock:
            changed = self._open.get(repo) != is_open
            self._open[repo] = is_open
            return changed

    def known(self, repo: str) -> bool | None:
        with self._lock:
            return self._open.get(repo)

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._open)


class Admission:
    """The decision for one request: return to serve it, raise the error to answer."""

    def __init__(
        self,
        check: Callable[[str, str | None], None],
        open_repos: OpenRepos,
        clock: Callable[[], float],
        ttl: float = ACCESS_TTL,
        on_learned: Callable[[], None] | None = None,
    ) -> None:
        self._check = check  # raises the upstream's refusal, or UpstreamUnavailable
        self.open_repos = open_repos
        self.book = AccessBook(ttl)
        self._clock = clock
        self._on_learned = on_learned

    def admit(self, repo: str, token: str | None) -> None:
        anonymous = self._verdict(repo, None)
        if anonymous is not None and anonymous.allowed:
            return
        if token is None:
            if anonymous is None:
                raise _cannot_check(repo)
            raise _refused(anonymous)
        verdict = self._verdict(repo, token)
        if verdict is None:
            raise _cannot_check(repo)
        if not verdict.allowed:
            raise _refused(verdict)

    def _verdict(self, repo: str, token: str | None) -> Verdict | None:
        """The upstream's answer, remembered or asked; None when it cannot be had."""
        now = self._clock()
        remembered = self.book.recall(repo, token, now)
        if remembered is not None:
            return remembered
        try:
            self._check(repo, token)
            verdict = ALLOWED
        except HubError as refusal:
            verdict = Verdict(refusal)
        except UpstreamUnavailable:
            if token is None and self.open_repos.known(repo):
                return ALLOWED  # open when last asked: serving what is cached is no bypass
            return None
        self.book.remember(repo, token, verdict, now)
        if token is None and self.open_repos.learn(repo, verdict.allowed) and self._on_learned:
            self._on_learned()
        return verdict


def _refused(verdict: Verdict) -> HubError:
    assert verdict.refusal is not None
    refusal = verdict.refusal
    # A fresh error each time: one exception object must not be raised in two threads.
    return HubError(refusal.status, refusal.code, refusal.message)


def _cannot_check(repo: str) -> HubError:
    message = f"cannot check access to {repo}: the upstream hub is unreachable"
    return HubError(503, "UpstreamUnavailable", message, headers=[("Retry-After", "10")])

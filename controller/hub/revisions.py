"""The hub, as modelsync talks to it: resolve a revision, and what its errors mean.

Everything goes through ``huggingface_hub`` so mirrors (``endpoint``), auth and the cache
layout behave exactly as they do for applications (files are fetched by
:mod:`controller.hub.transfer`, on huggingface_hub's HTTP session).  Its exceptions are mapped to
:class:`HubError` with a :class:`~controller.domain.Reason` and a message written for the
person reading the status; no message ever contains a token.

huggingface_hub reads ``HF_ENDPOINT`` and friends once, at import time, so
:func:`configure` must run before anything imports it (the CLI calls it first thing).
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any

from controller.cache.layout import UnsafePathError, check_relative
from controller.domain import Reason, RemoteFile, RemoteProblem, RemoteRevision, is_commit

# hub metadata calls have no timeout by default (HF_HUB_FACTS §1.2); a stalled mirror must
# not hang a reconcile.
METADATA_TIMEOUT_S = 30.0
RESOLVE_RETRY_DELAYS_S = (0.25, 0.75)

_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{8,}")


class HubError(Exception):
    """``transient``: the same request may succeed later; ``retry_after``: the seconds the
    server asked us to wait first, when it said."""

    def __init__(
        self, reason: Reason, message: str, *, transient: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


def configure(endpoint: str) -> None:
    """Point huggingface_hub's process-wide settings at ``endpoint`` before it is imported.

    An explicit ``endpoint`` is also passed to every call; the environment matters for the
    few requests huggingface_hub makes on its own (its agent registry look-up).
    """
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def redact(text: str) -> str:
    """Remove anything shaped like a token, and the configured one, from ``text``."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        text = text.replace(token, "***")
    return _TOKEN_RE.sub("hf_***", text)


def resolve(repo: str, revision: str, endpoint: str) -> RemoteRevision | RemoteProblem:
    """What ``repo@revision`` contains, or why the hub could not say.

    huggingface_hub does not retry ``model_info`` at all (HF_HUB_FACTS §1.2), so a single
    reset connection or 503 would leave the model unknown for this pass: transient failures
    get a few quick, jittered retries.  Longer outages are the controller's backoff's job.
    """
    answer, transient = _resolve_once(repo, revision, endpoint)
    for delay in RESOLVE_RETRY_DELAYS_S:
        if not transient:
            break
        time.sleep(delay * (0.5 + random.random()))
        answer, transient = _resolve_once(repo, revision, endpoint)
    return answer


def _resolve_once(
    repo: str, revision: str, endpoint: str
) -> tuple[RemoteRevision | RemoteProblem, bool]:
    """The answer, and whether asking again might change it."""
    from huggingface_hub import HfApi

    try:
        info = HfApi(endpoint=endpoint).model_info(
            repo, revision=revision, files_metadata=True, timeout=METADATA_TIMEOUT_S
        )
        files = tuple(_remote_file(s) for s in info.siblings or ())
    except UnsafePathError as e:
        problem = RemoteProblem(Reason.UNSAFE_PATH, f"the hub listed an {e}; refusing the revision")
        return problem, False
    except Exception as e:  # every failure becomes a recorded problem, never a crash
        err = to_hub_error(e, repo=repo, revision=revision, endpoint=endpoint)
        return RemoteProblem(err.reason, err.message), err.transient
    if not info.sha or not is_commit(info.sha):
        # The commit names a directory of the cache: only a plain 40-hex id is accepted.
        problem = RemoteProblem(
            Reason.HUB_UNREACHABLE,
            f"{endpoint} did not give a commit id for {repo}@{revision} (got {info.sha!r:.60})",
        )
        return problem, False
    return RemoteRevision(repo=repo, revision=revision, commit=info.sha, files=files), False


def _remote_file(sibling: Any) -> RemoteFile:
    check_relative(sibling.rfilename)
    lfs = sibling.lfs
    return RemoteFile(
        path=sibling.rfilename,
        size=int(sibling.size if sibling.size is not None else (lfs.size if lfs else 0)),
        blob_id=sibling.blob_id or "",
        sha256=lfs.sha256 if lfs else None,
    )


def to_hub_error(
    e: Exception, *, repo: str, revision: str, endpoint: str, path: str | None = None
) -> HubError:
    from huggingface_hub import errors

    where = f"{repo}@{revision[:12]}" + (f":{path}" if path else "")
    if isinstance(e, errors.GatedRepoError):
        return HubError(
            Reason.ACCESS_DENIED,
            (
                f"{repo} is gated: request access at {endpoint}/{repo}, then log in with "
                "`hf auth login` or set HF_TOKEN"
            ),
            transient=False,
        )
    if isinstance(e, errors.RepositoryNotFoundError):
        return HubError(
            Reason.REPO_NOT_FOUND,
            (
                f"{repo} was not found on {endpoint} (if it is private, log in with "
                "`hf auth login` or set HF_TOKEN)"
            ),
            transient=False,
        )
    if isinstance(e, errors.RevisionNotFoundError):
        return HubError(
            Reason.REVISION_NOT_FOUND,
            f"revision {revision!r} of {repo} was not found on {endpoint}",
            transient=False,
        )
    if isinstance(e, errors.RemoteEntryNotFoundError):
        return HubError(
            Reason.DOWNLOAD_FAILED, f"{where}: the hub has no such file", transient=False
        )
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return HubError(
            Reason.ACCESS_DENIED,
            (
                f"{endpoint} refused access to {repo} (HTTP {status}); log in with "
                "`hf auth login` or set HF_TOKEN"
            ),
            transient=False,
        )
    if status == 404:
        return HubError(
            Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE,
            f"{where}: not found on {endpoint} (HTTP 404)",
            transient=False,
        )
    detail = redact(_detail(e))
    if status is not None:
        return HubError(
            Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE,
            f"{where}: HTTP {status}: {detail}",
            # Overload and timeouts on the server's side pass; other statuses will not.
            transient=status >= 500 or status in (408, 429),
        )
    reason = Reason.DOWNLOAD_FAILED if path else Reason.HUB_UNREACHABLE
    return HubError(
        reason, f"{where}: cannot reach {endpoint}: {type(e).__name__}: {detail}", transient=True
    )


def _detail(e: Exception) -> str:
    """The first line of the error, plus what the server said about it, if anything."""
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    said = getattr(e, "server_message", None)
    if isinstance(said, str) and said.strip() and said.strip() not in text:
        text += f" ({' '.join(said.split())[:300]})"
    return text

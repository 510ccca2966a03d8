"""The hub a pull-through mirror fills from: what a revision holds, and who may read a repo.

Both questions go through huggingface_hub's own ``model_info`` (its session, its headers, its
reading of the hub's errors), so an upstream may be the Hub, another mirror or a ``reconcile
serve``.  A refusal comes back as the hub's own error (status, ``X-Error-Code``, message),
ready to be answered to a client as is; a hub that cannot be reached, or that fails on its
side, raises :class:`UpstreamUnavailable`, and the mirror falls back on what its directory
holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.cache import layout
from controller.cache.hashing import HashKind
from controller.domain import is_commit
from controller.hub import revisions
from controller.mirror.errors import HubError

# Seconds a metadata request to the upstream may take: clients of the mirror wait on it.
METADATA_TIMEOUT_S = 10.0
_URL_RE = re.compile(r"https?://")


class UpstreamUnavailable(Exception):
    """The upstream could not answer (unreachable, a timeout, a 5xx or a 429)."""


@dataclass(frozen=True)
class RemoteEntry:
    """One file of a commit upstream: the etag names its blob (sha256 for LFS, else git sha1)."""

    path: str
    etag: str
    size: int


@dataclass(frozen=True)
class Listing:
    """What one commit of a repo holds, as the upstream described it."""

    repo: str
    commit: str
    files: Mapping[str, RemoteEntry]
    last_modified: float


class Upstream:
    """The upstream hub at ``endpoint``; ``token`` is the mirror's own (None: none)."""

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._token = token

    @property
    def fill_token(self) -> str | bool:
        """What the transfer is given: False, not None, so no token is looked up implicitly."""
        return self._token or False

    def listing(self, repo: str, revision: str) -> Listing:
        """The files of ``repo@revision``, asked with the mirror's token."""
        info = self._model_info(repo, revision, self.fill_token, files=True)
        if not info.sha or not is_commit(info.sha):
            raise UpstreamUnavailable(f"{self.endpoint} gave no commit id for {repo}@{revision}")
        files = {}
        for sibling in info.siblings or ():
            entry = _remote_entry(sibling)
            if entry is not None:
                files[entry.path] = entry
        modified = info.last_modified.timestamp() if info.last_modified else 0.0
        return Listing(repo, info.sha, files, modified)

    def check(self, repo: str, token: str | None) -> None:
        """Return when ``token`` (None: anonymous) may read ``repo`` upstream; raise the hub's
        refusal (:class:`~controller.mirror.errors.HubError`) when it may not."""
        try:
            self._model_info(repo, None, token or False, files=False)
        except HubError as refusal:
            if refusal.code != "RevisionNotFound":  # a repo without ``main`` is still readable
                raise

    def _model_info(self, repo: str, revision: str | None, token: str | bool, files: bool) -> Any:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return HfApi(endpoint=self.endpoint).model_info(
                repo,
                revision=revision,
                files_metadata=files,
                token=token,
                timeout=METADATA_TIMEOUT_S,
            )
        except HfHubHTTPError as error:
            raise _refusal(error, self.endpoint, repo) from None
        except layout.UnsafePathError as error:
            raise UpstreamUnavailable(f"{self.endpoint} listed an {error}") from None
        except Exception as error:  # the connection, a timeout, a malformed answer
            detail = revisions.redact(f"{type(error).__name__}: {error}")
            raise UpstreamUnavailable(f"cannot reach {self.endpoint}: {detail}") from None


def _refusal(error: Any, endpoint: str, repo: str) -> Exception:
    """The upstream's error answer, kept as the hub's error for the client; a failure on the
    upstream's side (5xx, 429) means it is unavailable, not that the client may not read."""
    response = error.response
    status = int(response.status_code)
    if status >= 500 or status in (408, 429):
        return UpstreamUnavailable(f"{endpoint} answered HTTP {status}")
    code = response.headers.get("X-Error-Code") or _default_code(status)
    message = response.headers.get("X-Error-Message") or f"{endpoint} answered HTTP {status}"
    if code == "GatedRepo" and not _URL_RE.search(message):
        # Access is granted upstream, not here: clients take the page to ask from this
        # message (a mirror above this one has already named its own upstream's).
        message = f"{message.rstrip()} Request access at {endpoint}/{repo}"
    return HubError(status, code, revisions.redact(message))


def _default_code(status: int) -> str:
    return {401: "RepoNotFound", 404: "RepoNotFound"}.get(status, "Forbidden")


def _remote_entry(sibling: Any) -> RemoteEntry | None:
    """A listed file the mirror can serve: a safe path and a hex etag to name its blob."""
    try:
        path = layout.check_repo_path(sibling.rfilename)
    except ValueError:
        return None
    lfs = sibling.lfs
    etag = lfs.sha256 if lfs else sibling.blob_id
    size = sibling.size if sibling.size is not None else (lfs.size if lfs else None)
    if not isinstance(etag, str) or size is None:
        return None
    if HashKind.of_blob_name(etag) is None:
        return None
    return RemoteEntry(path, etag, int(size))

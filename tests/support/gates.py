"""Gated repos on the tests' hub: which tokens it accepts for which repo.

Answered as the Hub answers them (what huggingface_hub maps to ``GatedRepoError``): no token
is a 401, a token without access a 403, both with ``X-Error-Code: GatedRepo``.
"""

from __future__ import annotations

import threading


class Gates:
    def __init__(self) -> None:
        self._accepted: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def gate(self, repo_id: str) -> None:
        with self._lock:
            self._accepted.setdefault(repo_id, set())

    def accept(self, repo_id: str, token: str) -> None:
        with self._lock:
            self._accepted.setdefault(repo_id, set()).add(token)

    def refusal(self, path: str, authorization: str | None) -> tuple[int, str] | None:
        """(status, message) when ``path`` is of a gated repo the request may not read."""
        with self._lock:
            gated = {r: set(t) for r, t in self._accepted.items()}
        for repo_id, tokens in gated.items():
            if not _names(path, repo_id):
                continue
            token = (authorization or "").removeprefix("Bearer ").strip()
            if not token:
                return 401, f"Access to model {repo_id} is restricted. You must be authenticated."
            if token not in tokens:
                return 403, f"Access to model {repo_id} is restricted; you are not authorized."
        return None


def _names(path: str, repo_id: str) -> bool:
    api = f"/api/models/{repo_id}"
    return path == api or path.startswith(api + "/") or path.startswith(f"/{repo_id}/resolve/")

"""The hub's error answers: a status, the ``X-Error-Code`` the client maps to an exception."""

from __future__ import annotations

from collections.abc import Sequence


class HubError(Exception):
    """An error answered in the Hub's format: ``X-Error-Code`` is what the client maps."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        commit: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit
        self.headers = tuple(headers)

"""What went wrong talking to the hub, in words for the person reading the status."""

from __future__ import annotations

from controller.domain import Reason


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

"""What the state store raises: a database it cannot use, and the two refusals of retention.

The refusals are the two halves of one rule, each checked in the transaction that would break
it: a deletion waits for the model's live leases (:class:`InUseError`), and a lease waits for
the model's eviction (:class:`BeingEvictedError`).
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.domain import Lease


class StateError(Exception):
    """The state database cannot be used as asked."""


class SchemaTooNewError(StateError):
    """The database was written by a newer modelsync than this one."""


class InUseError(StateError):
    """A deletion was refused: a live lease holds the model."""

    def __init__(self, model: str, leases: Sequence[Lease]) -> None:
        holders = ", ".join(sorted({lease.holder for lease in leases}))
        super().__init__(f"{model} is in use ({holders}); its deletion waits for the lease")
        self.model = model
        self.leases = tuple(leases)


class BeingEvictedError(StateError):
    """A lease was refused: retention is deleting the model right now."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"{model} is being evicted by retention; request it again once the deletion is done"
        )
        self.model = model

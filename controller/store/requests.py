"""What people asked of a model, through the CLI or the API: fetch it, or stop working on it.

A request (``reconcile request``) stays pending until a reconcile has the model on disk; it
is also what brings back a model retention evicted.  A pause (``reconcile pause``) stops all
work on a model until it is resumed; kept here, it survives restarts and every plan sees it
(the manifest's ``suspend`` is the other way to pause).
"""

from __future__ import annotations

from datetime import datetime

from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database


class Requests(Database):
    """The ``requests`` and ``pauses`` tables."""

    def add_request(self, model: str, at: datetime) -> bool:
        """Queue a request for ``model``; False when one was already pending (kept as is).

        A request is what brings an evicted model back, so it ends the eviction.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO requests (model, requested_at) VALUES (?, ?) "
                "ON CONFLICT (model) DO NOTHING",
                (model, timestamp(at)),
            )
            conn.execute("DELETE FROM evicted WHERE model = ?", (model,))
            return cursor.rowcount == 1

    def requests(self) -> dict[str, datetime]:
        """Pending requests: model name -> when it was first requested."""
        rows = self._select("SELECT model, requested_at FROM requests ORDER BY model")
        return {row["model"]: parse_timestamp(row["requested_at"]) for row in rows}

    def clear_request(self, model: str) -> bool:
        """Mark a request fulfilled; False when there was none."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM requests WHERE model = ?", (model,))
            return cursor.rowcount == 1

    # ----------------------------------------------------------------- pauses

    def pause(self, model: str, at: datetime) -> bool:
        """Pause ``model``'s work; False when it was already paused (kept as is)."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO pauses (model, paused_at) VALUES (?, ?) "
                "ON CONFLICT (model) DO NOTHING",
                (model, timestamp(at)),
            )
            return cursor.rowcount == 1

    def resume(self, model: str) -> bool:
        """Lift a pause; False when the model was not paused."""
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM pauses WHERE model = ?", (model,))
            return cursor.rowcount == 1

    def paused(self) -> dict[str, datetime]:
        """Paused models: name -> when the pause began."""
        rows = self._select("SELECT model, paused_at FROM pauses ORDER BY model")
        return {row["model"]: parse_timestamp(row["paused_at"]) for row in rows}

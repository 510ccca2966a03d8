"""Health checks: the latest check of each model (its files and, when declared, its probe).

Only the latest is kept, so ``reconcile status`` can show it after any later apply.
"""

from __future__ import annotations

from controller.domain import HealthCheck
from controller.store.columns import parse_timestamp, timestamp
from controller.store.connection import Database


class HealthChecks(Database):
    """The ``health_checks`` table."""

    def record_health(self, check: HealthCheck) -> None:
        """Keep the latest health check of ``check.model`` (earlier ones are not kept)."""
        probe_ok = None if check.probe_ok is None else int(check.probe_ok)
        with self._write() as conn:
            conn.execute(
                """
                INSERT OR REPLACE INTO health_checks
                    (model, commit_sha, checked_at, files_ok, probe_ok, probe_exit, probe_message)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    check.model,
                    check.commit,
                    timestamp(check.checked_at),
                    int(check.files_ok),
                    probe_ok,
                    check.probe_exit,
                    check.probe_message,
                ),
            )

    def health_checks(self) -> dict[str, HealthCheck]:
        rows = self._select("SELECT * FROM health_checks ORDER BY model")
        return {
            row["model"]: HealthCheck(
                model=row["model"],
                commit=row["commit_sha"],
                checked_at=parse_timestamp(row["checked_at"]),
                files_ok=bool(row["files_ok"]),
                probe_ok=None if row["probe_ok"] is None else bool(row["probe_ok"]),
                probe_exit=row["probe_exit"],
                probe_message=row["probe_message"],
            )
            for row in rows
        }

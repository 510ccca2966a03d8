"""How instants are written to and read from the state database's text columns.

Every table stores time the same way, so the text order of a column is its time order and an
index on it serves range queries.  Callers pass every timestamp in; the store never reads the
clock, which keeps it deterministic under test and leaves "now" to whoever owns the loop.
"""

from __future__ import annotations

from datetime import datetime, timezone


def timestamp(value: datetime) -> str:
    """ISO-8601 UTC with fixed-width microseconds, so text order is time order."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no time zone; pass an aware datetime")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)

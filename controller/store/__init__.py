"""The SQLite state: everything modelsync remembers that is not a file in the cache.

One database, ``<state>/modelsync.db`` (WAL, migrations by ``user_version``), one module per
concern:

- ``connection``: opening read-write or read-only, and the short ``BEGIN IMMEDIATE``
  transactions every write is; ``schema``: the migrations; ``columns``: how time is stored;
  ``recovery``: a damaged database moved aside and replaced, with a warning, never fatal.
- One module per group of tables: ``verifications``; ``downloads`` (history and ownership);
  ``remote_revisions`` (the hub's last answers); ``usage``; ``requests`` (and pauses);
  ``lease_records``; ``deletions`` (the journal and evictions); ``health_checks``.
- ``state``: :class:`StateStore`, all of them over one connection.  ``errors``: what it raises.
- ``leases``: whether a recorded lease is still live, and a lease this process holds.

The names callers need are re-exported here: ``from controller.store import StateStore``.

May: read and write the database.  May not: touch the cache or the hub.
"""

from controller.store.connection import DB_FILENAME
from controller.store.downloads import DownloadOutcome, DownloadRecord
from controller.store.errors import BeingEvictedError, InUseError, SchemaTooNewError, StateError
from controller.store.recovery import Recovery
from controller.store.state import StateStore

__all__ = [
    "DB_FILENAME",
    "BeingEvictedError",
    "DownloadOutcome",
    "DownloadRecord",
    "InUseError",
    "Recovery",
    "SchemaTooNewError",
    "StateError",
    "StateStore",
]

"""The SQLite state store: everything modelsync remembers that is not a file in the cache.

:class:`StateStore` is one object over one database, composed of one class per group of
tables, each in its own module; the connection, its transactions and the schema are
:mod:`controller.store.connection` and :mod:`controller.store.schema`.  Callers see a
single store because some writes span groups in one transaction: a successful download is
owned as it is recorded, a lease and an eviction of the same model check each other, and a
request ends an eviction.
"""

from __future__ import annotations

from controller.store.deletions import Deletions
from controller.store.downloads import Downloads
from controller.store.health_checks import HealthChecks
from controller.store.lease_records import LeaseRecords
from controller.store.remote_revisions import RemoteRevisions
from controller.store.requests import Requests
from controller.store.usage import Usage
from controller.store.verifications import Verifications


class StateStore(
    Verifications,
    Downloads,
    RemoteRevisions,
    Usage,
    Requests,
    LeaseRecords,
    Deletions,
    HealthChecks,
):
    """Verification records, download history and ownership, the hub's last answers, usage,
    requests and pauses, leases, the deletion journal and evictions, and health checks.

    Open it with :meth:`open` (read-write, migrating) or :meth:`open_readonly` (planning,
    which must change nothing); close it, or use it as a context manager.
    """

"""The SQLite state: everything modelsync remembers that is not a file in the cache.

Usage records, verification records, downloads (ownership), deletions in progress, leases,
requests, pauses, health checks and the hub's last answers, in ``<state>/modelsync.db`` (WAL,
migrations by ``user_version``).  ``leases`` decides whether a recorded lease is still live.

May: read and write the database.  May not: touch the cache or the hub.
"""

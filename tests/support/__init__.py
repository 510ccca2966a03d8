"""Test support, the one home of it, imported as ``tests.support.<module>``.

Among it: ``repos`` writes model repos into a cache directory (the quickstart's writer too),
``faults`` is the mirror with faults on demand and a request log, ``hub`` the local hub the
tests publish to, ``cli`` runs the real ``reconcile`` command and ``deletion_halt`` runs it
with a deletion stopped before a chosen step.  The product never imports any of it.
"""

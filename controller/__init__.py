"""modelsync's controller: the reconcile loop and its edges, one subpackage per concern.

A pass reads top to bottom: ``manifest`` (load what is declared) → ``engine.observe`` (what is
there) → ``planning`` (what to do, pure) → ``engine.apply`` through the ``reconcilers`` (do it)
→ the status file.  ``runtime`` repeats passes as a controller, ``api`` answers applications,
``cli`` is the ``reconcile`` command, ``mirror`` serves a cache over the hub protocol.  The
layers, from ``cli`` down to ``domain``, are kept by import-linter (pyproject.toml); see
docs/architecture.md.
"""

__version__ = "0.1.0"

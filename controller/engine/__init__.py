"""One pass: observe → plan → apply → write status, and the I/O behind each stage.

``reconcile`` runs a pass from what ``controller.manifest.loading`` loaded (and ``--plan``'s
observe → plan, here or for another machine); ``observe`` reads the cache, the state store, the
disk and the hub and changes nothing; ``apply`` carries out a plan model by model through the
reconcilers and a ``workspace`` (the I/O behind their actions), whose ``file_pool`` runs the
models' file work in priority order within the connection budget; ``status_file`` writes and reads
the status atomically; ``health`` re-checks what is on disk and runs ``probe``s; ``progress``
tracks transfers; ``pinning`` is ``reconcile lock`` (each model pinned to a commit, the lock
files written); ``adoption`` records ownership of models another tool fetched.

May: use every layer below it.  May not: know about the long-running controller, HTTP or
the terminal.
"""

"""What every impure layer asks of the operating system, in one place.

``clock`` (the one place the wall clock is read), ``atomic`` (crash-safe replacement of a
small file: temp file, fsync, rename), ``claim_file`` (a claim that holds across the nodes of a
shared file system, where ``flock`` may not), ``processes`` (whether a pid is alive),
``cancel`` (stopping work at a safe point), ``exits`` (the exit codes of ``reconcile``),
``collector`` (pausing the cyclic garbage collector while a pass builds what it keeps).

May: use the standard library.  May not: import any other part of modelsync but ``domain``.
The pure layers may not import it at all.
"""

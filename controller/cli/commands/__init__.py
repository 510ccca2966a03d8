"""One module per ``reconcile`` command: between its parsed arguments and its exit code.

User errors (bad manifests, unreadable status files) are printed as messages and exit 1;
tracebacks are for bugs only.  Each module's ``run`` is the command.
"""

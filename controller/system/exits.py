"""The exit codes of ``reconcile``, defined once for every command.

They follow Terraform's ``plan -detailed-exitcode``: CI scripts already know what they mean.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    # Success; with ``--plan --detailed-exitcode``: in sync, nothing to do.
    OK = 0
    # An invalid manifest, a model that could not be assessed or applied, bad usage.  Bad
    # usage is an error, never CHANGES, so that CI cannot mistake a typo for pending changes.
    ERROR = 1
    # Only with ``--plan --detailed-exitcode``: changes pending.  ``reconcile request`` uses
    # it too: the model is not available yet (queued or under way).
    CHANGES = 2
    # Interrupted with Ctrl-C: what shells report for SIGINT (128 + 2).
    INTERRUPTED = 130

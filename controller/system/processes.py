"""Whether a process is still there: the test behind leases and claims on this host."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether ``pid`` exists on this host (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is only someone else's
    except OSError:
        return False
    return True

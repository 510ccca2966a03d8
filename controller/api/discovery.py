"""Where to reach the running controller: ``<state>/controller.json``, and a nudge to it.

The controller publishes who it is and where its HTTP API listens beside its claim on the
cache (``controller.runtime.claim``), so that clients -- the CLI's ``request`` and
``pause``, an application's :class:`~controller.api.client.ModelAvailability` -- find it and
ask it to act now instead of at its next resync.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

INFO_NAME = "controller.json"
TOKEN_ENV = "MODELSYNC_API_TOKEN"  # the API's bearer token, for servers and clients alike
# The node a controller speaks for.  In a pod the host name is the pod's, not the node's:
# Kubernetes passes the node's name in through the downward API (spec.nodeName).
NODE_ENV = "MODELSYNC_NODE_NAME"
NUDGE_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Info:
    pid: int
    url: str  # where this machine reaches the API (a wildcard bind is reached on loopback)
    started_at: str
    manifests: str
    host: str = ""  # the holder's host name: on a shared state directory, which node runs it


def read_info(state_dir: str | os.PathLike[str]) -> Info | None:
    """The running controller's details, or None when none has published them."""
    try:
        data = json.loads((Path(state_dir) / INFO_NAME).read_text(encoding="utf-8"))
        return Info(**data)
    except (OSError, ValueError, TypeError):
        return None


def nudge(state_dir: str | os.PathLike[str], path: str) -> bool:
    """POST ``path`` to the running controller, if any; best effort (False when it failed)."""
    running = read_info(state_dir)
    if running is None:
        return False
    # Imported only when a controller runs: the commands that nudge one start without httpx.
    import httpx2

    token = token_from_env()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx2.post(running.url + path, headers=headers, timeout=NUDGE_TIMEOUT_SECONDS)
    except httpx2.HTTPError:  # gone, or busy: the next resync picks the request up anyway
        return False
    return response.is_success


def token_from_env() -> str | None:
    """The API's bearer token, if this process was given one."""
    return os.environ.get(TOKEN_ENV) or None


def node_name() -> str:
    """The name this controller gives its node in its status and metrics."""
    return os.environ.get(NODE_ENV) or socket.gethostname()

"""One controller per cache: a lock in the state directory, and where to reach the holder.

Two controllers over one cache would download the same files twice and fight over its refs.
The lock is an ``flock`` on ``<state>/controller.lock``: the kernel drops it when the process
dies however it dies, so a crash never leaves a stale lock behind.  Next to it,
``controller.json`` says who holds it and where its HTTP API listens, so that a second
controller can say whom it collided with, and clients can find the running one.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from controller.fsutil import atomic_write_text

LOCK_NAME = "controller.lock"
INFO_NAME = "controller.json"
TOKEN_ENV = "MODELSYNC_API_TOKEN"  # the API's bearer token, for servers and clients alike
NUDGE_TIMEOUT_SECONDS = 1.0


class AlreadyRunning(Exception):
    def __init__(self, state_dir: Path, holder: Info | None) -> None:
        self.state_dir = state_dir
        self.holder = holder
        who = (
            f" (pid {holder.pid}, API at {holder.url})"
            if holder is not None
            else " (its pid is not known yet)"
        )
        super().__init__(
            f"another modelsync controller is already running for state directory "
            f"{state_dir}{who}; only one controller may manage a cache at a time"
        )


@dataclass(frozen=True)
class Info:
    pid: int
    url: str  # where this machine reaches the API (a wildcard bind is reached on loopback)
    started_at: str
    manifests: str


class InstanceLock:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self._lock = FileLock(self.state_dir / LOCK_NAME)

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning` at once (never wait for it)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise AlreadyRunning(self.state_dir, read_info(self.state_dir)) from None

    def publish(self, info: Info) -> None:
        atomic_write_text(self.state_dir / INFO_NAME, json.dumps(asdict(info), indent=1) + "\n")

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / INFO_NAME).unlink()
        self._lock.release()


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
    request = urllib.request.Request(running.url + path, data=b"", method="POST")
    token = os.environ.get(TOKEN_ENV)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=NUDGE_TIMEOUT_SECONDS):
            return True
    except OSError:  # gone, or busy: the next resync picks the request up anyway
        return False

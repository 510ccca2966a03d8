"""One controller per cache: a claim on the state directory, and where to reach its holder.

Two controllers over one cache would download the same files twice and fight over its refs.
The claim is an ``flock`` on ``<state>/controller.lock``: the kernel drops it when the process
dies however it dies, so a crash never leaves a stale claim behind.  Next to it,
``controller.json`` says who holds it and where its HTTP API listens, so that a second
controller can say whom it collided with, and clients can find the running one.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from filelock import FileLock, Timeout

from controller.api.discovery import INFO_NAME, Info, read_info
from controller.system.atomic import atomic_write_text

# The file's name predates the word "claim" and stays: a controller of an earlier version
# still running over the same state directory flocks this very file, so the two exclude each
# other during an upgrade instead of both managing the cache.
CLAIM_FILE = "controller.lock"


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


class CacheClaim:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self._flock = FileLock(self.state_dir / CLAIM_FILE)

    def take(self) -> None:
        """Claim the cache or raise :class:`AlreadyRunning` at once (never wait for it)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._flock.acquire(timeout=0)
        except Timeout:
            raise AlreadyRunning(self.state_dir, read_info(self.state_dir)) from None

    def publish(self, info: Info) -> None:
        atomic_write_text(self.state_dir / INFO_NAME, json.dumps(asdict(info), indent=1) + "\n")

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / INFO_NAME).unlink()
        self._flock.release()

"""One controller per cache: a claim on the state directory, and where to reach its holder.

Two controllers over one cache would download the same files twice and fight over its refs.
The claim has two parts, and a controller must get both:

* an ``flock`` on ``<state>/controller.lock``: the kernel drops it when the process dies however
  it dies, so on one machine a crash never leaves a stale claim behind;
* a claim file, ``<state>/controller.claim`` (:mod:`controller.system.claim_file`): created
  exclusively and kept alive by a heartbeat, because on NFS, Lustre or GPFS an ``flock`` may
  hold only within one node, or not at all, and two nodes sharing the state directory would
  both get it.  A crashed holder's claim file is taken over once its heartbeat is older than
  its timeout (``MODELSYNC_CLAIM_TIMEOUT`` seconds, 30 by default), or at once on the node
  where its pid is gone.

Next to them, ``controller.json`` says where the holder's HTTP API listens, so that clients find
the running controller; the claim file carries the same address, so that a second controller
names whom it collided with -- host, pid and API -- even from another node.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from controller.api.discovery import INFO_NAME, Info, read_info
from controller.system.atomic import atomic_write_text
from controller.system.claim_file import ClaimFile, Held, Holder

# The file's name predates the word "claim" and stays: a controller of an earlier version
# still running over the same state directory flocks this very file, so the two exclude each
# other during an upgrade instead of both managing the cache.
CLAIM_FILE = "controller.lock"
CLAIM_RECORD = "controller.claim"


class AlreadyRunning(Exception):
    def __init__(self, state_dir: Path, holder: Info | None) -> None:
        self.state_dir = state_dir
        self.holder = holder
        if holder is None:
            who = " (its pid is not known yet)"
        else:
            host = f"host {holder.host}, " if holder.host else ""
            api = f"API at {holder.url}" if holder.url else "its API not listening yet"
            who = f" ({host}pid {holder.pid}, {api})"
        super().__init__(
            f"another modelsync controller is already running for state directory "
            f"{state_dir}{who}; only one controller may manage a cache at a time"
        )


class CacheClaim:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self._flock = FileLock(self.state_dir / CLAIM_FILE)
        self.record = ClaimFile(self.state_dir / CLAIM_RECORD)
        self._renewing: contextlib.ExitStack | None = None

    @property
    def lost(self) -> bool:
        """True once another controller took the claim over (this one was frozen too long)."""
        return self.record.lost.is_set()

    def take(self) -> None:
        """Claim the cache or raise :class:`AlreadyRunning` at once (never wait for it); the
        heartbeat runs from here until :meth:`release`."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._flock.acquire(timeout=0)
        except Timeout:
            record = self.record.read()
            raise AlreadyRunning(self.state_dir, _holder_info(self.state_dir, record)) from None
        try:
            self.record.take()
        except Held as e:
            self._flock.release()
            raise AlreadyRunning(self.state_dir, _holder_info(self.state_dir, e.holder)) from None
        except BaseException:
            self._flock.release()
            raise
        self._renewing = contextlib.ExitStack()
        self._renewing.enter_context(self.record.renewed())

    def publish(self, info: Info) -> None:
        self.record.renew(url=info.url)
        atomic_write_text(self.state_dir / INFO_NAME, json.dumps(asdict(info), indent=1) + "\n")

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / INFO_NAME).unlink()
        if self._renewing is not None:
            self._renewing.close()
            self._renewing = None
        self.record.release()
        self._flock.release()


def _holder_info(state_dir: Path, holder: Holder | None) -> Info | None:
    """Who holds the claim, from its claim file, completed by ``controller.json``."""
    published = read_info(state_dir)
    if holder is None or holder.released:
        return published
    if published is not None and published.pid == holder.pid:
        return published if published.host else Info(**{**asdict(published), "host": holder.host})
    started = datetime.fromtimestamp(holder.started_at, timezone.utc).isoformat()
    return Info(holder.pid, holder.about.get("url", ""), started, "", holder.host)

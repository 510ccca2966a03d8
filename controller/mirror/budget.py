"""The mirror's byte budget: its directory kept within ``--max-bytes``, least recently served first.

When a request was last served is kept in memory and written, atomically and at most every
:data:`SAVE_EVERY` seconds, to a small state file in the directory (:data:`STATE_FILE`),
rather than read from the blobs' atime: ``noatime`` and ``relatime`` mounts, the usual ones,
do not keep it.  A blob the state file does not know (one another tool put there) counts as
served when it was last modified.  A blob being served or filled is never evicted; a fill
that cannot be made room for is refused rather than let the directory grow past its budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from controller.cache import layout
from controller.cache.hashing import HashKind
from controller.mirror.errors import HubError
from controller.system.atomic import atomic_write_text

STATE_FILE = ".modelsync-mirror.json"
STATE_VERSION = 1
SAVE_EVERY = 30.0  # seconds between writes of the state file caused by serving alone


@dataclass(frozen=True)
class Held:
    """A blob in the directory: its path relative to the directory, size, last served."""

    key: str
    size: int
    served: float


def evictions(held: Sequence[Held], busy: Set[str], limit: int, needed: int) -> list[Held] | None:
    """The blobs to delete, least recently served first, so ``needed`` more bytes fit in
    ``limit``; None when even deleting every idle blob would not make room."""
    usage = sum(h.size for h in held)
    chosen: list[Held] = []
    for candidate in sorted(held, key=lambda h: (h.served, h.key)):
        if usage + needed <= limit:
            break
        if candidate.key in busy:
            continue
        chosen.append(candidate)
        usage -= candidate.size
    return chosen if usage + needed <= limit else None


class Ledger:
    """What the directory holds, when each blob was last served, and what is in use."""

    def __init__(
        self,
        root: Path,
        max_bytes: int | None,
        clock: Callable[[], float],
        on_evicted: Callable[[Held], None] | None = None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._clock = clock
        self._on_evicted = on_evicted
        self._held: dict[str, Held] = {}
        self._busy: Counter[str] = Counter()
        self._reserved = 0
        self._saved_at = 0.0
        self.open_repos: dict[str, bool] = {}
        self._lock = threading.RLock()
        self._load()

    @property
    def usage(self) -> int:
        with self._lock:
            return sum(h.size for h in self._held.values()) + self._reserved

    def key(self, blob: Path) -> str:
        return blob.relative_to(self.root).as_posix()

    # Serving.

    @contextlib.contextmanager
    def in_use(self, blob: Path) -> Iterator[None]:
        """Keep ``blob`` from eviction meanwhile, and count it served."""
        key = self.key(blob)
        with self._lock:
            self._busy[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[key] -= 1
                if self._busy[key] <= 0:
                    del self._busy[key]
            self.served(blob)

    def served(self, blob: Path) -> None:
        key = self.key(blob)
        now = self._clock()
        with self._lock:
            held = self._held.get(key)
            if held is None:
                with contextlib.suppress(OSError):
                    self._held[key] = Held(key, blob.stat().st_size, now)
            else:
                self._held[key] = Held(key, held.size, now)
            due = now - self._saved_at >= SAVE_EVERY
        if due:
            self.save()

    # Filling.

    @contextlib.contextmanager
    def room_for(self, blob: Path, size: int) -> Iterator[None]:
        """Make room for ``size`` bytes (evicting) and hold it while ``blob`` is filled."""
        key = self.key(blob)
        with self._lock:
            if self.max_bytes is not None:
                self._make_room(size)
            self._reserved += size
            self._busy[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= size
                self._busy[key] -= 1
                if self._busy[key] <= 0:
                    del self._busy[key]
            if blob.is_file():
                self.served(blob)
                self.save()

    def _make_room(self, size: int) -> None:
        assert self.max_bytes is not None
        if size > self.max_bytes:
            raise HubError(
                507, "InsufficientStorage", f"a {size}-byte file exceeds the mirror's budget"
            )
        held = [*self._held.values(), Held("", self._reserved, float("inf"))]
        chosen = evictions(held, set(self._busy) | {""}, self.max_bytes, size)
        if chosen is None:
            message = "the mirror's budget is taken by files being served or filled"
            raise HubError(503, "InsufficientStorage", message, headers=[("Retry-After", "10")])
        for victim in chosen:
            self._evict(victim)
        if chosen:
            self.save()

    def _evict(self, victim: Held) -> None:
        blob = self.root / victim.key
        _unlink_links_to(blob)
        with contextlib.suppress(FileNotFoundError):
            blob.unlink()
        del self._held[victim.key]
        if self._on_evicted is not None:
            self._on_evicted(victim)

    # The state file.

    def save(self) -> None:
        with self._lock:
            served = {k: h.served for k, h in sorted(self._held.items())}
            state = {"version": STATE_VERSION, "served": served, "open": self.open_repos}
            text = json.dumps(state, sort_keys=True) + "\n"
            self._saved_at = self._clock()
        with contextlib.suppress(OSError):  # a full or read-only disk must not stop serving
            atomic_write_text(self.root / STATE_FILE, text)

    def _load(self) -> None:
        try:
            state = json.loads((self.root / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        served = state.get("served", {}) if isinstance(state, dict) else {}
        opened = state.get("open", {}) if isinstance(state, dict) else {}
        self.open_repos = {str(k): bool(v) for k, v in opened.items()}
        for repo in layout.list_repos(self.root):
            blobs = layout.repo_folder(self.root, repo) / "blobs"
            for blob in blobs.iterdir() if blobs.is_dir() else ():
                if HashKind.of_blob_name(blob.name) is None or not blob.is_file():
                    continue
                stat = blob.stat()
                key = self.key(blob)
                last = served.get(key)
                when = float(last) if isinstance(last, (int, float)) else stat.st_mtime
                self._held[key] = Held(key, stat.st_size, when)


def _unlink_links_to(blob: Path) -> None:
    """Remove the snapshot links of ``blob``'s repo that name it, so none is left dangling."""
    snapshots = blob.parent.parent / "snapshots"
    for directory, _, names in os.walk(snapshots):
        for name in names:
            link = Path(directory) / name
            with contextlib.suppress(OSError):
                if link.is_symlink() and Path(os.readlink(link)).name == blob.name:
                    link.unlink()

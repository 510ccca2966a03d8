"""Watching the manifests for edits (watchfiles: inotify, FSEvents, ReadDirectoryChangesW).

A manifest file is watched through its directory: editors save by writing a new file and
renaming it over the old one, and a Kubernetes ConfigMap volume swaps a ``..data`` symlink,
neither of which a watch on the file itself would see.  Every change only asks for a reload;
the reload compares the manifests' generation, so unrelated files in the directory cost a
parse and nothing more.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path

import watchfiles

log = logging.getLogger("modelsync.filewatch")

# watchfiles yields once the directory has been quiet for STEP ms, and at the latest after
# DEBOUNCE ms of continuous changes: a save (write + rename) is one reload, not three.
STEP_MS = 100
DEBOUNCE_MS = 1000


class ManifestWatcher:
    def __init__(
        self,
        path: str | Path,
        on_change: Callable[[], object],
        *,
        ignore: Collection[str | Path] = (),
    ) -> None:
        """``ignore``: files and directories whose changes mean nothing (the status file,
        the state database or the cache, when someone keeps them beside the manifests)."""
        target = Path(path).absolute()
        self.directory = target if target.is_dir() else target.parent
        self.recursive = target.is_dir()  # a ConfigMap keeps its files in ..<timestamp>/
        self.on_change = on_change
        self.ignore = tuple(str(Path(p).absolute()) for p in ignore)
        self._default = watchfiles.DefaultFilter()  # editor swap files, .git, ...
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelsync-filewatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _filter(self, change: watchfiles.Change, path: str) -> bool:
        ignored = any(path == p or path.startswith(p + os.sep) for p in self.ignore)
        return not ignored and self._default(change, path)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for _changes in watchfiles.watch(
                    self.directory,
                    watch_filter=self._filter,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=self._stop,
                    recursive=self.recursive,
                    raise_interrupt=False,
                ):
                    self.on_change()
            except Exception as e:  # the directory vanished, a watch limit was hit, ...
                log.warning("watching %s failed (%s); retrying", self.directory, e)
                self._stop.wait(2.0)

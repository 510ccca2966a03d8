"""A blob's partial file, claimed across nodes: one writer at a time, wherever it runs.

The partial of a blob has a stable name, ``blobs/<etag>.incomplete``, so that a download killed
by ``kill -9`` resumes where it stopped.  Writers of a blob take huggingface_hub's per-blob lock
(:mod:`controller.cache.blob_lock`), an ``flock`` -- which on NFS, Lustre or GPFS may hold only
within one node, or not at all.  Two writers on two nodes would then append to, truncate and
publish one partial at once, and a blob made of both could be renamed into place.

So a writer also holds ``<cache>/.locks/models--org--name/<etag>.claim``, a claim file
(:mod:`controller.system.claim_file`: created exclusively with ``link``, kept alive by a
heartbeat, taken over only when stale).  Whoever finds it held waits, polling, until the holder
has published the blob (which the caller then links and checks, as any cached blob) or its
claim goes stale (the holder died: the partial is resumed from its bytes on disk).  The file
lies beside huggingface_hub's own ``<etag>.lock`` and, like it, stays once released.

Only a stable partial needs a claim: a small blob is written into a partial private to its
writer (:mod:`controller.hub.private_partial`), which no other writer ever opens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.cache import layout
from controller.system.cancel import ModelStop
from controller.system.claim_file import ClaimFile, Held

log = logging.getLogger("modelsync.transfer")

# How often a waiting writer looks whether the blob is published or the claim went stale.
POLL_SECONDS = 0.2


@contextmanager
def writing(cache_dir: Path, repo: str, etag: str, stop: ModelStop | None = None) -> Iterator[None]:
    """Hold the claim on ``etag``'s partial for the block -- or, when another writer
    published the blob meanwhile, run the block without it (the caller finds the blob).

    ``stop`` ends the wait with :class:`~controller.system.cancel.Cancelled`.
    """
    blob = layout.blob_path(cache_dir, repo, etag)
    lock_dir = cache_dir / ".locks" / layout.repo_folder(cache_dir, repo).name
    claim = ClaimFile(lock_dir / f"{etag}.claim", about={"blob": blob.name})
    waiting_for = ""
    while not blob.is_file():
        try:
            claim.take()
        except Held as e:
            writer = f"pid {e.holder.pid} on {e.holder.host}"
            if writer != waiting_for:
                waiting_for = writer
                log.info("%s/%s is being downloaded by %s; waiting for it", repo, etag, writer)
            _wait(POLL_SECONDS, stop)
            continue
        try:
            with claim.renewed():
                yield
        finally:
            claim.release()
        return
    yield


def _wait(seconds: float, stop: ModelStop | None) -> None:
    if stop is None:
        time.sleep(seconds)
        return
    woken = threading.Event()
    with stop.waking(woken.set):
        woken.wait(seconds)
    stop.check()

"""The I/O behind the reconcilers' ``apply``: the cache's files, the hub and the state store.

A file counts as good only after its bytes were hashed and the digest matched its blob
name (sha256 for LFS files, git's blob sha1 otherwise); huggingface_hub checks only the
size.  Downloads go through :mod:`controller.hub.transfer`, which hashes while it writes and
publishes only verified blobs, so a fresh download is recorded as verified without being
read again.  A cached file that fails the check is moved out of the snapshot at once, so
that no application loads it, and the failure is reported with the file's name.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

from controller.cache import deletion, layout, tags
from controller.cache.inspection import inspect
from controller.domain import DEFAULT_BRANCH, Action, FileWork, Reason, Verification, is_commit
from controller.engine.file_pool import FilePool, gather
from controller.engine.progress import ProgressTracker
from controller.hub import connections, revisions, transfer
from controller.hub.transfer import RetryPolicy, TokenBucket
from controller.hub.watchdog import DEFAULT_FLOOR, SpeedFloor
from controller.store import DownloadOutcome, StateStore, leases
from controller.system.cancel import StopSignal
from reconcilers.base import FileOutcome

Clock = Callable[[], datetime]


class CacheWorkspace:
    def __init__(
        self,
        *,
        cache_dir: str,
        endpoint: str,
        store: StateStore,
        clock: Clock,
        concurrency: int = 8,
        connections_per_file: int = 1,
        max_bandwidth: int | None = None,
        retry: RetryPolicy = transfer.DEFAULT_RETRY,
        speed_floor: SpeedFloor = DEFAULT_FLOOR,
        stop: StopSignal | None = None,
        progress: ProgressTracker | None = None,
        offline: bool = False,
    ) -> None:
        """``max_bandwidth`` (bytes/s) is shared by all of this workspace's downloads.
        ``stop`` ends a model's transfers and checks between chunks and files (raising
        :class:`~controller.system.cancel.Cancelled`); ``progress`` hears every file's bytes.
        ``offline`` fetches only from blobs already cached: no request leaves the machine."""
        self.cache_dir = Path(cache_dir)
        self.endpoint = endpoint
        self.store = store
        self.clock = clock
        self.concurrency = max(1, concurrency)
        # One pool for the whole workspace, not one per model: models applied side by side
        # share its ``concurrency`` workers, so the transfers of a pass stay within the
        # connection budget however many models run, and it serves the models' files in
        # priority order (:meth:`prioritize`).  Threads suffice: downloads wait on sockets
        # and hashlib releases the GIL on the large buffers it is fed.
        self._files_pool = FilePool(self.concurrency)
        self._pool_lock = threading.Lock()
        # One fetch per blob per pass: models that share a blob (two revisions of one repo)
        # take turns on it, and a blob fetched and verified in this pass is neither fetched
        # nor moved aside again when another model's plan, made before, calls it damaged.
        # Re-entrant: a fetch that finds its blob cached checks it, and may quarantine it.
        self._blob_guards: dict[tuple[str, str], threading.RLock] = {}
        self._fresh: set[tuple[str, str]] = set()
        # Blobs moved aside as damaged in this pass: another model's check that finds one
        # gone meanwhile reports it damaged too, so that it is fetched (or linked) again.
        self._moved_aside: set[tuple[str, str]] = set()
        # The hub's word on whether a revision is a tag, asked once per repo and revision in
        # the pass, as soon as a model starts fetching (see :meth:`_tag_answer`).
        self._tag_answers: dict[tuple[str, str], Future[bool | None]] = {}
        self.connections_per_file = connections_per_file
        # The process's connections: files at once, and the extra ranges of large files.
        connections.SHARED.resize(self.concurrency)
        self.retry = retry
        self.speed_floor = speed_floor
        self.limiter = TokenBucket(max_bandwidth) if max_bandwidth else None
        self.stop = stop
        self.progress = progress
        self.offline = offline

    # ------------------------------------------------------------------ Workspace

    def fetch(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        if self.progress is not None:
            self.progress.expect(action.model, ((f.path, f.size) for f in files))
        fetches = self._files_pool.start(
            action.model, [functools.partial(self._fetch_one, action, f) for f in files]
        )
        if files and self._will_point(action):
            self._tag_answer(action)  # asked now, beside the files; awaited by point_ref
        return tuple(gather(fetches))

    def verify(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        known = self.store.verifications_for(action.repo)  # one query, not one per file
        checks = self._files_pool.map(
            action.model, lambda f: self._verify_one(action, f, known), files
        )
        return tuple(checks)

    def quarantine(self, action: Action, files: Sequence[FileWork]) -> None:
        for f in files:
            self._quarantine_one(action.repo, action.commit, f)

    def point_ref(self, action: Action) -> None:
        if is_commit(action.revision):
            return
        ref = layout.ref_path(self.cache_dir, action.repo, action.revision)
        served = layout.read_ref(ref)  # read once: both checks below must see the same commit
        if served == action.commit:
            # Left as it is: its mtime says when it last moved, and retention keeps the old
            # revision for a grace period counted from then.  A rewrite would restart it.
            return
        # Without a ref yet, pointing it switches nothing anyone uses: no lease holds it.
        if served is not None and self._switch_held(action):
            return
        layout.write_ref(self.cache_dir, action.repo, action.revision, action.commit)
        self._record_tag(action)

    def delete(self, action: Action) -> tuple[FileOutcome, ...]:
        return deletion.delete(
            action,
            cache_dir=self.cache_dir,
            store=self.store,
            clock=self.clock,
            is_live=lambda lease: leases.is_live(lease, self.clock()),
        )

    def discard_quarantined(self, action: Action) -> tuple[FileOutcome, ...]:
        return deletion.discard_quarantined(self.cache_dir, action)

    def _record_tag(self, action: Action) -> None:
        """Note whether the revision is a tag, as the hub says, for ``reconcile serve`` of
        this cache to answer as the hub does; offline, the last record stands."""
        if not self._asks_tag(action):
            return
        answer = self._tag_answer(action).result()
        if answer is not None:
            tags.record(self.cache_dir, action.repo, action.revision, is_tag=answer)

    def _asks_tag(self, action: Action) -> bool:
        """Whether the hub is asked if the revision is a tag.  Not offline, and not for
        :data:`~controller.domain.DEFAULT_BRANCH`: every Hub repo has that branch, a tag of
        the same name would make the name ambiguous to git itself, and ``reconcile serve``
        lists a ref with no record as a branch.  Asking cost a request per model, a quarter
        of those of a first apply of small models."""
        return not self.offline and action.revision != DEFAULT_BRANCH

    def _will_point(self, action: Action) -> bool:
        """Whether :meth:`point_ref` will write the ref once ``action`` succeeds, and so ask
        the hub whether its revision is a tag."""
        if is_commit(action.revision) or not self._asks_tag(action):
            return False
        try:
            ref = layout.ref_path(self.cache_dir, action.repo, action.revision)
        except layout.UnsafePathError:
            return False  # point_ref refuses it, with the reason
        return layout.read_ref(ref) != action.commit

    def _tag_answer(self, action: Action) -> Future[bool | None]:
        """Whether ``action``'s revision is a tag, asked of the hub once per repo and revision.

        Asked through the file pool, queued right behind the model's files: the request
        counts within the connection budget and comes in priority order, and its round trip
        overlaps the model's downloads instead of following them (the ref is written after).
        """
        key = (action.repo, action.revision)
        with self._pool_lock:
            answer = self._tag_answers.get(key)
            if answer is None:
                answer = self._files_pool.submit(
                    action.model,
                    lambda: revisions.is_tag(action.repo, action.revision, self.endpoint),
                )
                self._tag_answers[key] = answer
            return answer

    def _switch_held(self, action: Action) -> bool:
        """A lease taken after planning still keeps the served commit: the files stay and
        the next reconcile switches the ref once the lease ends."""
        now = self.clock()
        return any(leases.is_live(lease, now) for lease in self.store.leases(action.model))

    # ------------------------------------------------------------------ internals

    def prioritize(self, models: Sequence[str]) -> None:
        """Serve the files of ``models`` in this order (the plan's: priority order), whichever
        of them asks first."""
        self._files_pool.prioritize(models)

    def model_done(self, model: str) -> None:
        """``model``'s work in this pass ended: models after it need not wait for its files."""
        self._files_pool.done(model)

    def close(self) -> None:
        """End the workspace's file workers once the apply is over (idempotent)."""
        self._files_pool.shutdown()

    def _fetch_one(self, action: Action, f: FileWork) -> FileOutcome:
        # A second model asking for a blob under way waits for it, then only links it.
        with self._guard(action.repo, f.etag):
            outcome = self._fetch_unguarded(action, f)
            if outcome.ok:
                self._fresh.add((action.repo, f.etag))
        return outcome

    def _guard(self, repo: str, etag: str) -> threading.RLock:
        with self._pool_lock:
            return self._blob_guards.setdefault((repo, etag), threading.RLock())

    def _fetch_unguarded(self, action: Action, f: FileWork) -> FileOutcome:
        started, t0 = self.clock(), time.monotonic()
        ref = transfer.FileRef(action.repo, f.path, action.commit, etag=f.etag, size=f.size)
        try:
            fetched = transfer.fetch(
                ref,
                cache_dir=self.cache_dir,
                endpoint=self.endpoint,
                retry=self.retry,
                limiter=self.limiter,
                progress=self.progress.file(action.model, f.path) if self.progress else None,
                stop=self.stop.for_model(action.model) if self.stop else None,
                offline=self.offline,
                speed_floor=self.speed_floor,
                connections_per_file=self.connections_per_file,
                private_small_files=True,  # no one reads a partial of a pass as it grows
            )
        except revisions.HubError as e:
            corrupt = e.reason in (Reason.CHECKSUM_MISMATCH, Reason.SIZE_MISMATCH)
            recorded = DownloadOutcome.CORRUPT if corrupt else DownloadOutcome.FAILED
            self._record(action, f, started, t0, recorded, e.message)
            return FileOutcome(f.path, ok=False, reason=e.reason, detail=e.message)
        except layout.UnsafePathError as e:
            return FileOutcome(f.path, ok=False, reason=Reason.UNSAFE_PATH, detail=str(e))
        verified: Verification | None = None
        if fetched.digest is None:
            # The blob was already cached and only linked: check it like any cached file.
            outcome = self._check(action, f, fetched.snapshot)
        else:
            outcome, verified = self._fetched_outcome(f, fetched)
        # The attempt and the verification of the bytes it brought, in one transaction.
        with self.store.together():
            if verified is not None:
                self.store.record_verification(action.repo, verified)
            self._record(
                action,
                f,
                started,
                t0,
                DownloadOutcome.OK if outcome.ok else DownloadOutcome.CORRUPT,
                outcome.detail,
                transferred=outcome.transferred,
            )
        return outcome

    def _fetched_outcome(
        self, f: FileWork, fetched: transfer.Fetched
    ) -> tuple[FileOutcome, Verification | None]:
        """The digest computed while downloading, as the blob's verification: the blob needs
        no second read."""
        assert fetched.digest is not None
        try:
            st = fetched.blob.stat()
        except OSError as e:
            detail = f"{f.path}: gone right after its download: {e.strerror}"
            return FileOutcome(f.path, ok=False, reason=Reason.DOWNLOAD_FAILED, detail=detail), None
        verified = Verification(
            blob=fetched.etag,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            digest=fetched.digest,
            ok=True,
            checked_at=self.clock(),
        )
        return FileOutcome(f.path, ok=True, transferred=fetched.transferred), verified

    def _verify_one(
        self, action: Action, f: FileWork, known: Mapping[str, Verification]
    ) -> FileOutcome:
        if self.stop is not None:
            self.stop.for_model(action.model).check()  # between files: no file is opened
        try:
            snapshot = layout.snapshot_path(self.cache_dir, action.repo, action.commit, f.path)
        except layout.UnsafePathError as e:
            return FileOutcome(f.path, ok=False, reason=Reason.UNSAFE_PATH, detail=str(e))
        return self._check(action, f, snapshot, known)

    def _check(
        self,
        action: Action,
        f: FileWork,
        snapshot: Path,
        known: Mapping[str, Verification] | None = None,
    ) -> FileOutcome:
        # A stop mid-hash raises Cancelled out of inspect, before the verdict: the file is
        # neither recorded nor quarantined, and the next pass verifies it again.
        stop = self.stop.for_model(action.model).requested if self.stop is not None else None
        found = inspect(self.store, action.repo, f, snapshot, self.clock, stop=stop, known=known)
        if found.ok:
            return FileOutcome(f.path, ok=True)
        if found.reason is Reason.DOWNLOAD_FAILED and (action.repo, f.etag) in self._moved_aside:
            detail = f"{f.path}: damaged, moved aside for another model in this pass"
            return FileOutcome(f.path, ok=False, reason=Reason.CHECKSUM_MISMATCH, detail=detail)
        if found.reason is not Reason.DOWNLOAD_FAILED:
            self._quarantine_one(action.repo, action.commit, f)
        return FileOutcome(f.path, ok=False, reason=found.reason, detail=found.detail)

    def _quarantine_one(self, repo: str, commit: str, f: FileWork) -> None:
        """Move a damaged blob aside and unlink it from the snapshot.

        The blob goes to ``<repo>/.quarantine/`` (same filesystem, so a rename) rather than
        being deleted: the bytes stay available to whoever investigates.  The snapshot link
        goes too, or huggingface_hub would return the damaged file without any request.
        """
        with self._guard(repo, f.etag):
            self._quarantine_unguarded(repo, commit, f)

    def _quarantine_unguarded(self, repo: str, commit: str, f: FileWork) -> None:
        snapshot = layout.snapshot_path(self.cache_dir, repo, commit, f.path)
        blob = snapshot.resolve() if snapshot.is_symlink() else snapshot
        blobs_dir = layout.blob_path(self.cache_dir, repo, f.etag).parent.resolve()
        # Only the blob named for this file's content is moved: when the link points at some
        # other blob (another file's, still linked from other snapshots), unlinking is enough.
        ours = blob.parent == blobs_dir and blob.name == f.etag
        if ours and (repo, f.etag) in self._fresh:
            return  # fetched and verified in this pass, for another model: the link is good
        if blob.exists() and (ours or blob == snapshot):
            target = layout.quarantine_path(self.cache_dir, repo, blob.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(blob, target)
            self._moved_aside.add((repo, f.etag))
            # A rename keeps the blob's mtime (when it was written); retention's grace period
            # counts from the move, so the move is what the mtime says from now on.
            moved = self.clock().timestamp()
            os.utime(target, (moved, moved))
        if snapshot.is_symlink():
            snapshot.unlink()
        self.store.forget_verification(repo, f.etag)

    def _record(
        self,
        action: Action,
        f: FileWork,
        started: datetime,
        t0: float,
        outcome: DownloadOutcome,
        message: str,
        *,
        transferred: int = 0,
    ) -> None:
        self.store.record_download(
            model=action.model,
            repo=action.repo,
            revision=action.revision,
            commit=action.commit,
            path=f.path,
            bytes=transferred,
            started_at=started,
            finished_at=self.clock(),
            outcome=outcome,
            message=revisions.redact(message),
            seconds=time.monotonic() - t0,
        )

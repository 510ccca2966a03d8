"""A :class:`~reconcilers.base.Workspace` held in memory: the cache, the hub and the state store
as a few dictionaries, so that a reconciler's ``apply`` can be run from a table and judged by
the state it leaves behind.

The fake keeps the promises the real workspace (``controller.engine.workspace``) makes, and
nothing more:

- a fetched file is published only when its bytes hash to the blob name it was listed with
  and have the listed size; otherwise nothing of it reaches the cache;
- a verified file is one whose bytes were hashed and matched; a damaged one is moved out of
  the snapshot at once (to the quarantine), so no application loads it;
- a stop is honoured between files, raising :class:`~controller.system.cancel.Cancelled`; what
  was done before it stays;
- a deletion is refused while a lease holds the model, removes the refs naming a snapshot it
  empties, and frees only the blobs no remaining entry links;
- a ref switch is held back while a lease holds the model.

Every file is an LFS file here: its blob name is the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from controller.domain import (
    Action,
    CachedFile,
    CachedRepo,
    DesiredState,
    FileWork,
    Lease,
    Observation,
    OwnedFile,
    QuarantinedFile,
    Reason,
    RemoteFile,
    RemoteRevision,
    Verification,
    is_commit,
)
from controller.system.cancel import Cancelled
from reconcilers.base import FileOutcome

# (repo, commit, path): one snapshot entry, or one file of a hub revision.
Key = tuple[str, str, str]
# (repo, blob name)
Blob = tuple[str, str]


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def work(files: Mapping[str, bytes]) -> tuple[FileWork, ...]:
    """The files as a plan names them: path, listed size, and the blob name their bytes hash to."""
    return tuple(FileWork(p, len(c), digest(c)) for p, c in sorted(files.items()))


class FakeWorkspace:
    def __init__(self, now: datetime) -> None:
        self.now = now
        # The hub: what it lists and serves at each commit, and what it refuses to serve.
        self.heads: dict[tuple[str, str], str] = {}  # (repo, revision) -> commit
        self.listed: dict[tuple[str, str], tuple[FileWork, ...]] = {}  # (repo, commit) -> files
        self.served: dict[Key, bytes] = {}
        self.refused: dict[Key, tuple[Reason, str]] = {}
        # The cache.
        self.blobs: dict[Blob, bytes] = {}
        self.snapshots: dict[tuple[str, str], dict[str, str]] = {}  # -> path -> blob name
        self.refs: dict[tuple[str, str], str] = {}  # (repo, revision) -> commit
        self.quarantined: dict[Blob, bytes] = {}
        self.quarantined_at: dict[Blob, datetime] = {}  # when each was moved aside
        # The state store.
        self.verified: set[Blob] = set()
        self.found_bad: set[Blob] = set()  # a check recorded the wrong digest
        self.owned: dict[Key, str] = {}  # entry -> the model it was downloaded for
        self.leases: set[str] = set()  # models a live lease holds
        # Files fetched or verified before a stop is asked for; None: never.
        self.stop_after: int | None = None
        self.handled = 0

    # ------------------------------------------------------------------ setting the scene

    def publish(
        self, repo: str, commit: str, files: Mapping[str, bytes], *, revision: str = "main"
    ) -> tuple[FileWork, ...]:
        """The hub lists and serves ``files`` at ``commit``, the head of ``revision``."""
        listed = work(files)
        self.heads[(repo, revision)] = commit
        self.listed[(repo, commit)] = listed
        for path, content in files.items():
            self.served[(repo, commit, path)] = content
        return listed

    def serve_instead(self, repo: str, commit: str, path: str, content: bytes) -> None:
        """The hub sends other bytes than the ones it listed (a broken mirror or proxy)."""
        self.served[(repo, commit, path)] = content

    def refuse(self, repo: str, commit: str, path: str, reason: Reason, message: str) -> None:
        self.refused[(repo, commit, path)] = (reason, message)

    def put(
        self,
        repo: str,
        commit: str,
        files: Mapping[str, bytes],
        *,
        owner: str | None = None,
        verified: bool = True,
        ref: str | None = "main",
    ) -> None:
        """``files`` are in the cache at ``commit`` (downloaded for ``owner``; None: by
        another tool), and ``refs/<ref>`` names it."""
        for f, content in zip(work(files), (files[p] for p in sorted(files)), strict=True):
            self.blobs[(repo, f.etag)] = content
            self.snapshots.setdefault((repo, commit), {})[f.path] = f.etag
            if verified:
                self.verified.add((repo, f.etag))
            if owner is not None:
                self.owned[(repo, commit, f.path)] = owner
        if ref is not None and files:
            self.refs[(repo, ref)] = commit

    def damage(
        self, repo: str, commit: str, path: str, content: bytes, *, noticed: bool = False
    ) -> None:
        """The blob behind ``path`` now holds ``content`` (a bad disk, a stray write).

        Unnoticed, its verification no longer describes it (the mtime moved), so the next
        plan verifies it; ``noticed``, a health check recorded the bad digest, so the next
        plan repairs it.
        """
        blob = (repo, self.snapshots[(repo, commit)][path])
        self.blobs[blob] = content
        self.verified.discard(blob)
        if noticed:
            self.found_bad.add(blob)

    def put_quarantined(self, repo: str, content: bytes, since: datetime) -> str:
        """Damaged bytes moved aside at ``since``; their blob name."""
        blob = digest(content)
        self.quarantined[(repo, blob)] = content
        self.quarantined_at[(repo, blob)] = since
        return blob

    # ------------------------------------------------------------------ what is there

    def files(self, repo: str, commit: str) -> dict[str, bytes]:
        """What an application reading the snapshot gets: path -> bytes."""
        entries = self.snapshots.get((repo, commit), {})
        return {p: self.blobs[(repo, b)] for p, b in entries.items() if (repo, b) in self.blobs}

    def verified_files(self, repo: str, commit: str) -> set[str]:
        entries = self.snapshots.get((repo, commit), {})
        return {p for p, b in entries.items() if (repo, b) in self.verified}

    def observation(self, desired: DesiredState) -> Observation:
        """What observing this cache, hub and store gives: the planners' input."""
        repos = {r for r, _ in self.snapshots} | {r for r, _ in self.refs}
        repos |= {r for r, _ in self.quarantined}
        repos |= {m.repo for m in desired.models}
        cache = {repo: self._cached(repo) for repo in sorted(repos)}
        remote = {}
        for m in desired.models:
            commit = m.revision if is_commit(m.revision) else self.heads.get((m.repo, m.revision))
            if commit is not None and (m.repo, commit) in self.listed:
                files = tuple(
                    RemoteFile(f.path, f.size, f.etag[:40], sha256=f.etag)
                    for f in self.listed[(m.repo, commit)]
                )
                remote[m.name] = RemoteRevision(m.repo, m.revision, commit, files)
        return Observation(
            cache=cache,
            remote=remote,
            verifications={
                (repo, blob): Verification(
                    blob, len(content), 0, 0, digest(content), digest(content) == blob, self.now
                )
                for (repo, blob), content in self.blobs.items()
                if (repo, blob) in self.verified | self.found_bad
            },
            disk=None,
            owned=tuple(
                OwnedFile(repo, commit, path, model, False, self.now - timedelta(days=60))
                for (repo, commit, path), model in sorted(self.owned.items())
            ),
            leases={
                model: (Lease("l1", model, "pid 4242", None, "gpu-1", self.now, self.now, 60.0),)
                for model in sorted(self.leases)
            },
        )

    def _cached(self, repo: str) -> CachedRepo:
        snapshots = {
            commit: {
                path: CachedFile(path, blob, len(self.blobs.get((repo, blob), b"")))
                for path, blob in entries.items()
            }
            for (r, commit), entries in self.snapshots.items()
            if r == repo
        }
        return CachedRepo(
            repo=repo,
            refs={rev: c for (r, rev), c in self.refs.items() if r == repo},
            snapshots=snapshots,
            blobs={b: len(c) for (r, b), c in self.blobs.items() if r == repo},
            ref_times={rev: self.now - timedelta(days=60) for (r, rev) in self.refs if r == repo},
            quarantined=tuple(
                QuarantinedFile(b, len(c), self.quarantined_at[(r, b)])
                for (r, b), c in sorted(self.quarantined.items())
                if r == repo
            ),
        )

    # ------------------------------------------------------------------ Workspace

    def fetch(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        return tuple(self._fetch_one(action, f) for f in files)

    def verify(self, action: Action, files: Sequence[FileWork]) -> tuple[FileOutcome, ...]:
        return tuple(self._verify_one(action, f) for f in files)

    def quarantine(self, action: Action, files: Sequence[FileWork]) -> None:
        for f in files:
            self._quarantine_one(action.repo, action.commit, f.path)

    def point_ref(self, action: Action) -> None:
        if is_commit(action.revision):
            return
        served = self.refs.get((action.repo, action.revision))
        if served is not None and served != action.commit and action.model in self.leases:
            return  # the switch waits for the lease to end
        self.refs[(action.repo, action.revision)] = action.commit

    def delete(self, action: Action) -> tuple[FileOutcome, ...]:
        if action.model in self.leases:
            detail = f"{action.model} is in use (pid 4242 on gpu-1)"
            return (FileOutcome("", ok=False, reason=Reason.IN_USE, detail=detail),)
        repo, commit = action.repo, action.commit
        entries = self.snapshots.get((repo, commit), {})
        paths = {f.path for f in action.files}
        if not set(entries) - paths:
            for key in [k for k, c in self.refs.items() if k[0] == repo and c == commit]:
                del self.refs[key]
        for path in paths:
            entries.pop(path, None)
            self.owned.pop((repo, commit, path), None)
        if not entries:
            self.snapshots.pop((repo, commit), None)
        linked = {b for (r, _), e in self.snapshots.items() if r == repo for b in e.values()}
        for f in action.files:
            if f.etag not in linked:
                self.blobs.pop((repo, f.etag), None)
                self.verified.discard((repo, f.etag))
        return tuple(FileOutcome(f.path, ok=True) for f in action.files)

    def discard_quarantined(self, action: Action) -> tuple[FileOutcome, ...]:
        for f in action.files:
            self.quarantined.pop((action.repo, f.etag), None)
            self.quarantined_at.pop((action.repo, f.etag), None)
        return tuple(FileOutcome(f.path, ok=True) for f in action.files)

    # ------------------------------------------------------------------ internals

    def _safe_point(self, action: Action) -> None:
        """Between files: where the real workspace notices a stop."""
        if self.stop_after is not None and self.handled >= self.stop_after:
            raise Cancelled(f"{action.model}: stopped on request")
        self.handled += 1

    def _fetch_one(self, action: Action, f: FileWork) -> FileOutcome:
        self._safe_point(action)
        repo, key = action.repo, (action.repo, action.commit, f.path)
        if key in self.refused:
            reason, message = self.refused[key]
            return FileOutcome(f.path, ok=False, reason=reason, detail=f"{f.path}: {message}")
        if (repo, f.etag) in self.blobs and (repo, f.etag) in self.verified:
            # Another snapshot holds the blob already: linked, nothing travels.
            self._link(action, f)
            return FileOutcome(f.path, ok=True)
        content = self.served.get(key)
        if content is None:
            return FileOutcome(
                f.path, ok=False, reason=Reason.DOWNLOAD_FAILED, detail=f"{f.path}: 404 Not Found"
            )
        if len(content) != f.size:
            detail = f"{f.path}: received {len(content)} bytes, expected {f.size}"
            return FileOutcome(f.path, ok=False, reason=Reason.SIZE_MISMATCH, detail=detail)
        if digest(content) != f.etag:
            detail = f"{f.path}: content hashes to {digest(content)[:12]}, expected {f.etag[:12]}"
            return FileOutcome(f.path, ok=False, reason=Reason.CHECKSUM_MISMATCH, detail=detail)
        self.blobs[(repo, f.etag)] = content
        self.verified.add((repo, f.etag))
        self.found_bad.discard((repo, f.etag))
        self._link(action, f)
        return FileOutcome(f.path, ok=True, transferred=len(content))

    def _link(self, action: Action, f: FileWork) -> None:
        self.snapshots.setdefault((action.repo, action.commit), {})[f.path] = f.etag
        self.owned[(action.repo, action.commit, f.path)] = action.model

    def _verify_one(self, action: Action, f: FileWork) -> FileOutcome:
        self._safe_point(action)
        repo = action.repo
        blob = self.snapshots.get((repo, action.commit), {}).get(f.path)
        if blob is None or (repo, blob) not in self.blobs:
            detail = f"{f.path}: cannot read: No such file or directory"
            return FileOutcome(f.path, ok=False, reason=Reason.DOWNLOAD_FAILED, detail=detail)
        content = self.blobs[(repo, blob)]
        if len(content) != f.size:
            reason = Reason.SIZE_MISMATCH
            detail = f"{f.path}: {len(content)} bytes, expected {f.size}"
        elif digest(content) != f.etag:
            reason = Reason.CHECKSUM_MISMATCH
            detail = f"{f.path}: content hashes to {digest(content)[:12]}"
        else:
            self.verified.add((repo, blob))
            self.found_bad.discard((repo, blob))
            return FileOutcome(f.path, ok=True)
        self._quarantine_one(repo, action.commit, f.path)
        return FileOutcome(f.path, ok=False, reason=reason, detail=detail)

    def _quarantine_one(self, repo: str, commit: str, path: str) -> None:
        blob = self.snapshots.get((repo, commit), {}).pop(path, None)
        if blob is None:
            return
        content = self.blobs.pop((repo, blob), None)
        if content is not None:
            self.quarantined[(repo, blob)] = content
            self.quarantined_at[(repo, blob)] = self.now
        self.verified.discard((repo, blob))
        self.found_bad.discard((repo, blob))

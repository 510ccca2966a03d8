"""``reconcile serve DIR --upstream URL``: serve what DIR holds, fill it from upstream on a miss.

Each request names a repo; it is served only to whom the upstream would serve it
(:mod:`controller.mirror.admission`).  A revision is asked upstream (a branch's answer
trusted for :data:`REVISION_TTL` seconds, a commit's for good), its branch written to DIR's
``refs/`` and the commit's listing kept in DIR (:mod:`controller.mirror.listings`), so that
while the upstream is down, also after a restart, a commit and a branch it answered before
are listed whole, never as the part DIR holds.  A file DIR lacks is fetched once however many
clients ask (:mod:`controller.mirror.fills`), within the byte budget
(:mod:`controller.mirror.budget`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import unquote

# Exported lazily, which mypy cannot see; the module's documented import.
from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

from controller.cache import layout
from controller.domain import is_commit
from controller.hub import transfer
from controller.hub.errors import HubError as TransferError
from controller.mirror import metrics
from controller.mirror.admission import ACCESS_TTL, Admission, OpenRepos
from controller.mirror.budget import Held, Ledger
from controller.mirror.errors import HubError
from controller.mirror.fills import GAVE_UP_TTL, Fill, Fills, GaveUp, GrowingBody, Outcome
from controller.mirror.handler import BlobContent, Body, Content
from controller.mirror.health import UpstreamHealth
from controller.mirror.listings import Listings
from controller.mirror.repo_view import FileEntry, RepoView, Revision, open_repo
from controller.mirror.upstream import Listing, Upstream, UpstreamUnavailable
from controller.system.atomic import TEMP_NAME_RE, atomic_write_text

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Seconds a branch's commit, as the upstream last said, is trusted before asking again: a
# storm of nodes resolving ``main`` costs the upstream one request, and a push is seen soon.
REVISION_TTL = 10.0
MAX_COMMITS_REMEMBERED = 4096  # listings of commits (they never change) kept in memory
# What follows the repo id in /api/models/<id>/...: a one-segment id (``gpt2``) is told
# from ``org/name`` by it.
_API_WORDS = frozenset({"revision", "tree", "paths-info", "refs", "commits"})


class FillContent:
    """A file still coming from upstream: HEAD answers from the listing, GET joins the fill."""

    def __init__(self, size: int, fill: Fill | None, count: Callable[[int], None]) -> None:
        self.size = size
        self.fill = fill
        self._count = count

    def body(self, start: int, length: int) -> Body:
        assert self.fill is not None, "a body is only sent for GET, which starts a fill"
        return GrowingBody(self.fill, start, length, self._count)


class PullThrough:
    """The pull-through side of a mirror over ``root``."""

    def __init__(
        self,
        root: Path,
        upstream: Upstream,
        *,
        max_bytes: int | None = None,
        revision_ttl: float = REVISION_TTL,
        access_ttl: float = ACCESS_TTL,
        gave_up_ttl: float = GAVE_UP_TTL,
    ) -> None:
        self.root = root
        self.upstream = upstream
        self.revision_ttl = revision_ttl
        self.metrics = metrics.MirrorMetrics()
        self.health = UpstreamHealth(upstream.endpoint, time.monotonic)
        self.listings = Listings(root)
        self.listings.forget_orphans()
        self.ledger = Ledger(root, max_bytes, time.time, on_evicted=self._evicted)
        self.admission = Admission(
            self._counted(upstream.check),
            OpenRepos(self.ledger.open_repos),
            time.monotonic,
            access_ttl,
            on_learned=self._save_open_repos,
        )
        self.fills = Fills(time.monotonic, gave_up_ttl)
        collector = metrics.MirrorCollector(self.metrics, lambda: self.ledger.usage, max_bytes)
        self.registry = metrics.registry(collector)
        self._branches: dict[tuple[str, str], tuple[Listing, float]] = {}
        self._commits: OrderedDict[tuple[str, str], Listing] = OrderedDict()
        self._lock = threading.Lock()

    # Requests.

    def locate(
        self, segments: list[str], marker: str | None, authorization: str | None
    ) -> tuple[RepoView, list[str]]:
        """The repo a request names, once its client is admitted to it, and the rest."""
        size = _id_length(segments, marker)
        repo = "/".join(unquote(s) for s in segments[:size])
        try:
            validate_repo_id(repo)
            folder = layout.repo_folder(self.root, repo)
        except ValueError:
            raise HubError(404, "RepoNotFound", f"Repository {repo} not found") from None
        self.admission.admit(repo, _bearer(authorization))
        view = PulledRepo(self.root, repo, folder, self)
        return view, segments[size + (marker is not None) :]

    @contextlib.contextmanager
    def content(self, method: str, entry: FileEntry, commit: str) -> Iterator[Content]:
        """The file to answer with: the blob DIR holds, or the fill that brings it."""
        with self.ledger.in_use(entry.blob):
            try:
                stream = entry.blob.open("rb")
            except FileNotFoundError:
                stream = None
            if stream is not None:
                with stream:
                    self._link(entry, commit)
                    yield BlobContent(stream, self.metrics.adder("served_from_cache"))
                return
            try:
                fill = self._join_fill(entry, commit) if method == "GET" else None
                if fill is None:
                    self.fills.check(entry.blob)
            except GaveUp as gave_up:
                raise _bad_bytes(gave_up) from None
            yield FillContent(entry.size, fill, self.metrics.adder("served_from_fill"))

    def health_report(self) -> dict[str, object]:
        return self.health.report()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        return metrics.exposition(self.registry, accept)

    def close(self) -> None:
        self.ledger.save()

    # Revisions.

    def listing(self, repo: str, revision: str) -> Listing | None:
        """``repo@revision`` as the upstream lists it, or last listed it when it cannot be
        asked now; None when it never answered for it."""
        name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        cached: tuple[Listing, float] | None = None
        if is_commit(name):
            known = self._known_commit(repo, name)
            if known is not None:
                return known
        else:
            with self._lock:
                cached = self._branches.get((repo, name))
            if cached is not None and time.monotonic() - cached[1] <= self.revision_ttl:
                return cached[0]
        try:
            listing = self._counted(self.upstream.listing)(repo, revision)
        except UpstreamUnavailable:
            # The branch's last answer, however old, rather than DIR's snapshot: DIR may hold
            # part of the commit, and listing that part would tell a node the model is whole.
            return cached[0] if cached is not None else self._last_branch_answer(repo, name)
        self._remember(listing, name)
        return listing

    def _known_commit(self, repo: str, commit: str) -> Listing | None:
        """The upstream's listing of ``repo@commit``, remembered or kept in DIR."""
        with self._lock:
            known = self._commits.get((repo, commit))
        if known is not None:
            return known
        kept = self.listings.load(repo, commit)
        if kept is not None:
            self._remember_commit(kept)
        return kept

    def _last_branch_answer(self, repo: str, name: str) -> Listing | None:
        """After a restart: the commit DIR's ref says the branch last named, as listed then."""
        if is_commit(name):
            return None
        try:
            ref = layout.ref_path(self.root, repo, layout.check_ref_name(name))
        except ValueError:
            return None
        commit = layout.read_ref(ref)
        return self._known_commit(repo, commit) if commit is not None else None

    def _remember(self, listing: Listing, name: str) -> None:
        self._remember_commit(listing)
        if not is_commit(name):
            with self._lock:
                self._branches[(listing.repo, name)] = (listing, time.monotonic())
        snapshot = layout.snapshot_dir(self.root, listing.repo, listing.commit)
        snapshot.mkdir(parents=True, exist_ok=True)
        # Kept before any of the commit's files is fetched, so DIR never holds part of a
        # commit without the listing of the whole.
        self.listings.save(listing)
        if not is_commit(name):
            self._write_ref(listing.repo, name, listing.commit)

    def _remember_commit(self, listing: Listing) -> None:
        with self._lock:
            self._commits[(listing.repo, listing.commit)] = listing
            self._commits.move_to_end((listing.repo, listing.commit))
            while len(self._commits) > MAX_COMMITS_REMEMBERED:
                self._commits.popitem(last=False)

    def _write_ref(self, repo: str, name: str, commit: str) -> None:
        """DIR remembers what the branch named, for when the upstream is down."""
        try:
            ref = layout.ref_path(self.root, repo, layout.check_ref_name(name))
        except ValueError:
            return
        if layout.read_ref(ref) != commit:
            atomic_write_text(ref, commit)

    # Fills.

    def _join_fill(self, entry: FileEntry, commit: str) -> Fill:
        room = contextlib.ExitStack()

        def start() -> Fill:
            room.enter_context(self.ledger.room_for(entry.blob, entry.size))
            repo = _repo_of(entry.blob)
            self._keep_listing(repo, commit)
            ref = transfer.FileRef(repo, entry.path, commit, entry.etag, entry.size)
            return Fill(
                ref,
                entry.size,
                self.root,
                self.upstream.endpoint,
                self.upstream.fill_token,
                self._fetched,
                lambda: self.metrics.add("upstream_errors"),
            )

        fill, coalesced = self.fills.join(entry.blob, start)
        if coalesced:
            self.metrics.add("coalesced")
            return fill
        self.metrics.add("fills")

        def after() -> None:
            room.close()
            if fill.outcome is Outcome.FAILED:
                self.metrics.add("upstream_errors")
                self.health.failed(fill.error or "a download from the upstream failed")

        self.fills.run(fill, after)
        return fill

    def _keep_listing(self, repo: str, commit: str) -> None:
        """Keep the commit's listing in DIR before one of its files lands there: forgotten
        when the budget evicted the commit's last file, it is still remembered here."""
        with self._lock:
            known = self._commits.get((repo, commit))
        if known is not None:
            self.listings.save(known)

    def _link(self, entry: FileEntry, commit: str) -> None:
        """Link a blob DIR holds into the commit it is served for, so the commit stays
        servable from DIR alone (the transfer links a cached blob without a request)."""
        repo = _repo_of(entry.blob)
        if layout.snapshot_path(self.root, repo, commit, entry.path).is_symlink():
            return
        ref = transfer.FileRef(repo, entry.path, commit, entry.etag, entry.size)
        with contextlib.suppress(TransferError, OSError):
            transfer.fetch(ref, cache_dir=self.root, endpoint=self.upstream.endpoint, offline=True)

    # Bookkeeping.

    def _counted(self, call: Callable[_P, _R]) -> Callable[_P, _R]:
        """``call``, counting the upstream's failures (not its refusals) as errors, and
        noting for ``/healthz`` whether it answered."""

        def counted(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                result = call(*args, **kwargs)
            except UpstreamUnavailable as error:
                self.metrics.add("upstream_errors")
                self.health.unreachable(str(error))
                raise
            except HubError:
                self.health.answered()  # a refusal is an answer
                raise
            self.health.answered()
            return result

        return counted

    def _fetched(self, count: int) -> None:
        self.metrics.add("fetched", count)
        self.health.answered()

    def _evicted(self, held: Held) -> None:
        self.metrics.add("evictions")
        self.metrics.add("evicted_bytes", held.size)
        blob = self.root / held.key
        self.listings.forget_evicted(_repo_of(blob), blob.name)

    def _save_open_repos(self) -> None:
        self.ledger.open_repos = self.admission.open_repos.snapshot()
        self.ledger.save()


class PulledRepo(RepoView):
    """A repo as the upstream lists it, falling back on DIR's copy while it is unreachable."""

    def __init__(self, root: Path, repo_id: str, folder: Path, pull: PullThrough) -> None:
        super().__init__(root, repo_id, folder)
        self.pull = pull

    def resolve(self, revision: str) -> str:
        listing = self.pull.listing(self.repo_id, revision)
        return listing.commit if listing is not None else self._local().resolve(revision)

    def revision(self, revision: str) -> Revision:
        listing = self.pull.listing(self.repo_id, revision)
        if listing is None:
            local = self._local()
            held = local.revision(revision)
            if not _held_whole(local.folder, held):
                raise _unavailable(f"{self.repo_id}@{held.commit} is held in part")
            return held
        files = {path: self._entry_of(e.path, e.etag, e.size) for path, e in listing.files.items()}
        return Revision(self.repo_id, listing.commit, files, listing.last_modified)

    def file(self, commit: str, path: str) -> FileEntry | None:
        listing = self.pull.listing(self.repo_id, commit)
        if listing is None:
            held = self._local().file(commit, path)
            if held is None:  # whether the commit has it, only the upstream can say
                raise _unavailable(f"{self.repo_id}@{commit} holds no {path}")
            return held
        entry = listing.files.get(path)
        return None if entry is None else self._entry_of(path, entry.etag, entry.size)

    def _entry_of(self, path: str, etag: str, size: int) -> FileEntry:
        return FileEntry(path, layout.blob_path(self.root, self.repo_id, etag), etag, size)

    def _local(self) -> RepoView:
        view = open_repo(self.root, self.repo_id)
        if view is None:
            raise _unavailable(f"{self.repo_id} is not cached")
        return view


def _held_whole(folder: Path, held: Revision) -> bool:
    """Whether a commit DIR holds, never listed by the upstream, may be listed as it is.

    Nothing in a cache says a snapshot is a whole commit, so DIR's is taken for one only
    when nothing shows it is a part: it holds a file, every entry of it is a complete blob
    (no dangling link), and no download of the repo is under way or was left unfinished.
    """
    if not held.files or any((folder / "blobs").glob("*.incomplete")):
        return False
    entries = 0
    for _directory, _dirs, names in os.walk(folder / "snapshots" / held.commit):
        entries += sum(1 for name in names if not TEMP_NAME_RE.fullmatch(name))
    return entries == len(held.files)


def _unavailable(what: str) -> HubError:
    message = f"{what} and the upstream hub is unreachable"
    return HubError(503, "UpstreamUnavailable", message, headers=[("Retry-After", "10")])


def _bad_bytes(gave_up: GaveUp) -> HubError:
    """Said in the hub's format, so a client reports why instead of a short read.

    No ``Retry-After``: a client waiting exactly that long would come back to a new fill
    and be cut again, and report that instead of the reason; at its own pace it hears why.
    """
    again = math.ceil(gave_up.retry_after)
    message = f"{gave_up.why}; the mirror fetches it again in {again} s"
    return HubError(502, "UpstreamBadBytes", message)


def _id_length(segments: list[str], marker: str | None) -> int:
    """How many segments name the repo: ``org/name`` (2) or a legacy ``name`` (1)."""
    if marker is not None:
        return 1 if len(segments) > 1 and segments[1] == marker else 2
    return 1 if len(segments) > 1 and segments[1] in _API_WORDS else min(2, len(segments))


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _repo_of(blob: Path) -> str:
    """``models--org--name/blobs/<etag>`` -> ``org/name``."""
    return blob.parent.parent.name.removeprefix(layout.MODEL_PREFIX).replace("--", "/")

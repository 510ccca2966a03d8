"""The observed state: what the cache, the state store, the disk and the hub say now.

The values a pass makes once per file (tens of thousands for a large cache: ``FileWork``,
``RemoteFile``, ``CachedFile``, ``Verification``, ``OwnedFile``) have ``__slots__``: no dict
per instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from controller.domain.kinds import Reason


@dataclass(frozen=True, slots=True)
class FileWork:
    path: str
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file of a hub revision.  ``etag`` is its blob name in the HF cache layout."""

    path: str
    size: int
    blob_id: str  # git blob sha1
    sha256: str | None = None  # set for LFS files

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class RemoteRevision:
    """What the hub says a revision contains, resolved to one commit."""

    repo: str
    revision: str
    commit: str
    files: tuple[RemoteFile, ...]
    stale: bool = False  # True when read from the state store because the hub was unreachable
    # True when read from a lock file: a reviewed change chose this commit, so it is applied
    # whatever the model's update policy (the lock's diff was the human's "yes").
    locked: bool = False
    # When the hub gave this answer, for a remembered one: an answer older than the cache's
    # own move of the ref is older news than the cache, and is not followed.
    learned_at: datetime | None = None


@dataclass(frozen=True)
class RemoteProblem:
    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class CachedFile:
    """A snapshot entry: ``path`` in the snapshot and the blob it resolves to."""

    path: str
    blob: str  # blob file name (the etag); "" when the entry is a plain copy
    size: int  # -1 when the link is broken
    mtime_ns: int = 0
    inode: int = 0


@dataclass(frozen=True)
class PartialFile:
    blob: str
    size: int
    resumable: bool = False  # modelsync's stable name; huggingface_hub's per-process ones are not


# The folder of a repo's cache folder that damaged bytes are moved to: out of every
# snapshot, where no application loads them, until retention deletes them.
QUARANTINE_DIR = ".quarantine"


@dataclass(frozen=True)
class QuarantinedFile:
    """Damaged bytes moved to the repo's ``.quarantine/``: out of every snapshot, still on disk."""

    name: str  # its file name there (the blob name it had)
    size: int
    since: datetime  # when it was moved there (its mtime, set by the move)


@dataclass(frozen=True)
class CachedRepo:
    repo: str
    refs: Mapping[str, str] = field(default_factory=dict)
    snapshots: Mapping[str, Mapping[str, CachedFile]] = field(default_factory=dict)
    partials: tuple[PartialFile, ...] = ()
    # Every complete file in blobs/ (name -> bytes), linked or not: a deletion killed between
    # unlinking a snapshot and removing its blobs leaves blobs that only this shows.
    blobs: Mapping[str, int] = field(default_factory=dict)
    # When each ref file was last written (its mtime): the moment a ref moved, which an old
    # revision's grace period counts from.
    ref_times: Mapping[str, datetime] = field(default_factory=dict)
    quarantined: tuple[QuarantinedFile, ...] = ()

    def files_at(self, commit: str) -> Mapping[str, CachedFile]:
        return self.snapshots.get(commit, {})


@dataclass(frozen=True, slots=True)
class Verification:
    """The last check of a blob, valid while size, mtime and inode are unchanged."""

    blob: str
    size: int
    mtime_ns: int
    inode: int
    digest: str
    ok: bool
    checked_at: datetime

    def still_describes(self, f: CachedFile) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (f.size, f.mtime_ns, f.inode)


@dataclass(frozen=True)
class Disk:
    total: int
    free: int


@dataclass(frozen=True)
class UsageStats:
    """How a model was used over the usage window (derived by ``controller.usage``)."""

    uses: int  # uses within the window
    uses_per_day: float  # uses / window days
    last_used: datetime | None
    average_generation_seconds: float | None  # over the uses that reported a generation time
    performance_score: float | None  # 1.0: generating as fast as its window average; lower: slower


@dataclass(frozen=True, slots=True)
class OwnedFile:
    """A snapshot entry modelsync made (downloaded or linked) or was told to adopt.

    Ownership is per entry, not per repo: another tool's revision, or its extra files in the
    same snapshot, are never modelsync's to delete.
    """

    repo: str
    commit: str
    path: str
    model: str  # the model it was downloaded or adopted for
    adopted: bool  # False: modelsync downloaded it
    since: datetime  # when it was first recorded (a re-download after eviction starts over)


@dataclass(frozen=True)
class Lease:
    """A process (or an HTTP client) using a model; while live, the model is untouchable."""

    id: str
    model: str
    holder: str  # for messages: "pid 4242 on gpu-1", "an API client"
    pid: int | None  # None: no process to watch (an HTTP lease lives by its renewals)
    host: str
    acquired_at: datetime
    heartbeat_at: datetime
    ttl_seconds: float


@dataclass(frozen=True)
class DeletionRecord:
    """One deletion as the state store journals it: written before the first file goes, so
    a deletion killed halfway is finished by the next apply."""

    id: int
    model: str
    repo: str
    commit: str
    reason: Reason
    message: str
    files: tuple[FileWork, ...]
    started_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Eviction:
    """An on-demand model retention deleted; it stays away until it is requested again."""

    model: str
    reason: Reason
    message: str
    at: datetime


@dataclass(frozen=True)
class HealthCheck:
    """The latest health check of a model: its files, and its probe when it has one."""

    model: str
    commit: str
    checked_at: datetime
    files_ok: bool
    probe_ok: bool | None = None  # None: no probe declared, or files were not fit to probe
    probe_exit: int | None = None  # None with probe_ok False: timed out or could not start
    probe_message: str = ""


@dataclass(frozen=True)
class Observation:
    cache: Mapping[str, CachedRepo]  # by repo id: every models--* repo in the cache
    remote: Mapping[str, RemoteRevision | RemoteProblem]  # by model name
    verifications: Mapping[tuple[str, str], Verification]  # by (repo, blob)
    disk: Disk | None
    problems: tuple[str, ...] = ()
    usage: Mapping[str, UsageStats] = field(default_factory=dict)  # by model name; absent: unused
    requested: frozenset[str] = frozenset()  # on-demand models requested and not yet fulfilled
    paused: frozenset[str] = frozenset()  # models paused through the API (state store)
    throughput: float | None = None  # measured download bytes/second, for wait estimates
    owned: tuple[OwnedFile, ...] = ()
    leases: Mapping[str, tuple[Lease, ...]] = field(default_factory=dict)  # live ones, by model
    pending_deletions: tuple[DeletionRecord, ...] = ()  # started and not finished
    evicted: Mapping[str, Eviction] = field(default_factory=dict)  # by model name
    health: Mapping[str, HealthCheck] = field(default_factory=dict)  # by model name

    def repo(self, repo: str) -> CachedRepo:
        return self.cache.get(repo) or CachedRepo(repo=repo)

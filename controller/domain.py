"""The values the loop passes between its stages.

Everything here is an immutable value: the desired state comes from the manifest
(``controller.manifest``), the observed state from ``controller.observe``, and the
planner turns both into a :class:`Plan` without touching the outside world.  Keeping
these types free of I/O is what lets ``plan`` be a pure function that tests can
drive from tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

# The one schema version of everything modelsync reads or writes: manifests, locks, status.
API_VERSION = "modelsync/v1"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def is_commit(revision: str) -> bool:
    """A revision that already names a commit needs no resolution and no ref."""
    return bool(COMMIT_RE.match(revision))


class Phase(str, Enum):
    """The seed's availability phases; every model in a status has exactly one."""

    AVAILABLE = "AVAILABLE"
    DOWNLOADING = "DOWNLOADING"
    MISSING = "MISSING"
    CORRUPTED = "CORRUPTED"
    UPDATING = "UPDATING"
    QUEUED = "QUEUED"
    PAUSED = "PAUSED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


class Priority(str, Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    AUTO = "auto"

    @property
    def rank(self) -> int:
        """Lower rank is more urgent; ``auto`` without usage counts as low."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {
    Priority.CRITICAL: 0,
    Priority.HIGH: 1,
    Priority.MEDIUM: 2,
    Priority.LOW: 3,
    Priority.AUTO: 3,
}


class Policy(str, Enum):
    ALWAYS = "always"
    ON_DEMAND = "on-demand"


class UpdatePolicy(str, Enum):
    AUTO = "auto"
    NOTIFY = "notify"
    OFF = "off"


class ActionKind(str, Enum):
    """What an action does.  The enum order is the order of work within a model."""

    REPAIR = "repair"
    DOWNLOAD = "download"
    UPDATE = "update"
    VERIFY = "verify"
    DELETE = "delete"


# The kinds whose ``Action.bytes`` travel over the network (a verify reads its bytes, a delete
# frees them).
TRANSFER_KINDS = frozenset({ActionKind.REPAIR, ActionKind.DOWNLOAD, ActionKind.UPDATE})


class RetentionMode(str, Enum):
    ENFORCE = "enforce"  # plans delete, apply carries the deletions out
    RECOMMEND = "recommend"  # plans and status show the deletions; nothing is ever deleted


class Reason(str, Enum):
    """Machine-readable causes, shared by plan actions and status entries."""

    MISSING = "Missing"  # nothing of the model is in the cache
    INCOMPLETE = "Incomplete"  # some selected files are missing
    CORRUPTED = "Corrupted"  # a file's size or checksum differs from the hub's
    UNVERIFIED = "Unverified"  # files are present but were never checked
    UPSTREAM_MOVED = "UpstreamMoved"  # the branch now points at another commit
    REVISION_CHANGED = "RevisionChanged"  # the manifest asks for another revision
    VERIFIED = "Verified"  # every selected file is present and checked
    SUSPENDED = "Suspended"
    NOT_REQUESTED = "NotRequested"  # on-demand model nobody asked for yet
    REQUESTED = "Requested"  # on-demand model requested, waiting for a reconcile to fetch it
    HUB_UNREACHABLE = "HubUnreachable"
    REPO_NOT_FOUND = "RepoNotFound"
    REVISION_NOT_FOUND = "RevisionNotFound"
    ACCESS_DENIED = "AccessDenied"
    NO_MATCHING_FILES = "NoMatchingFiles"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    SIZE_MISMATCH = "SizeMismatch"
    DOWNLOAD_FAILED = "DownloadFailed"
    DISK_FULL = "DiskFull"
    UNSAFE_PATH = "UnsafePath"
    PROBE_FAILED = "ProbeFailed"  # every file verified, but the model's probe failed
    # Retention: why a deletion was chosen, or why it waits.
    REMOVED_FROM_MANIFEST = "RemovedFromManifest"  # owned files no declared model needs
    OLD_REVISION = "OldRevision"  # owned files of a commit the model has moved away from
    NOT_SELECTED = "NotSelected"  # owned files its include/exclude no longer select
    UNUSED = "Unused"  # an on-demand model unused for more than max_unused_days
    OVER_BUDGET = "OverBudget"  # evicted, least valuable first, to fit the disk budget
    INTERRUPTED = "Interrupted"  # finishing a deletion that was killed halfway
    IN_USE = "InUse"  # a live lease holds the model: deletions and ref switches wait
    # An old revision kept for a while after the ref moved away from it: applications that
    # resolved it just before the switch may still be reading its files.
    GRACE_PERIOD = "GracePeriod"
    RECOMMEND_ONLY = "RecommendOnly"  # retention.mode is recommend: shown, never applied
    EVICTED = "Evicted"  # an on-demand model retention deleted; fetched again when requested
    DELETE_FAILED = "DeleteFailed"


# --------------------------------------------------------------------------- desired


@dataclass(frozen=True)
class Probe:
    """A command that loads the model for real; exit status 0 means healthy."""

    command: tuple[str, ...]
    timeout_s: float = 300.0


@dataclass(frozen=True)
class DesiredModel:
    """One model as the manifest declares it, with defaults already applied."""

    name: str
    repo: str
    revision: str = "main"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    priority: Priority = Priority.AUTO
    policy: Policy = Policy.ALWAYS
    updates: UpdatePolicy = UpdatePolicy.NOTIFY
    suspend: bool = False
    source: str = ""  # "file:line" where the model is declared, for messages
    tags: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()  # declared models that can serve in its place, best first
    # Files another tool put in the cache become modelsync's to delete once they leave the
    # manifest (or to evict); without it, modelsync only ever deletes what it downloaded.
    adopt: bool = False
    probe: Probe | None = None

    def nothing_selected(self) -> str:
        """Why a commit gives this model no files: its patterns match none of the commit's."""
        return (
            f"no file of {self.repo}@{self.revision} matches include {list(self.include)} / "
            f"exclude {list(self.exclude)}"
        )


@dataclass(frozen=True)
class RetentionPolicy:
    """The manifest's ``retention`` (the seed's defaults)."""

    max_unused_days: int = 30
    max_storage_usage_percent: float = 80.0
    min_usage_frequency: float = 0.1  # uses/day; rarer on-demand models may go when over budget
    preserve_recently_downloaded: bool = True
    preserve_high_priority: bool = True
    mode: RetentionMode = RetentionMode.ENFORCE
    # How long an old revision outlives the move of the model's ref away from it.
    old_revision_grace: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class DesiredState:
    models: tuple[DesiredModel, ...]
    cache_dir: str
    state_dir: str
    endpoint: str
    generation: str  # hash of the manifest content, echoed as observedGeneration
    status_file: str
    usage_window_days: int = 30  # usage history kept, and averaged over for uses per day
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)


# --------------------------------------------------------------------------- observed


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class RemoteProblem:
    reason: Reason
    message: str


@dataclass(frozen=True)
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

    def files_at(self, commit: str) -> Mapping[str, CachedFile]:
        return self.snapshots.get(commit, {})


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class FileWork:
    path: str
    size: int
    etag: str


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    model: str
    repo: str
    revision: str
    commit: str
    files: tuple[FileWork, ...]
    bytes: int  # bytes it transfers (download/repair/update), reads (verify) or frees (delete)
    reason: Reason
    message: str
    priority: Priority | None = None  # the model's effective priority, set by the planner
    priority_reason: str = ""  # why it has that priority, e.g. "auto: 2.3 uses/day"


@dataclass(frozen=True)
class Withheld:
    """An action the plan shows but does not carry out, and why (in use, recommend mode)."""

    action: Action
    reason: Reason  # IN_USE, GRACE_PERIOD or RECOMMEND_ONLY
    message: str


@dataclass(frozen=True)
class Unmanaged:
    """Part of the cache modelsync neither downloaded, adopted nor needs: never deleted."""

    repo: str
    bytes: int  # its blobs that nothing of modelsync's refers to, each counted once
    commits: tuple[str, ...]


@dataclass(frozen=True)
class BudgetFit:
    """The disk budget against what modelsync keeps: now, plus transfers, minus deletions."""

    budget: int
    source: str  # where the number comes from, for messages
    on_disk: int  # bytes of what modelsync manages (owned or needed), each blob once
    transfers: int
    freed: int  # by the plan's deletions (and, in recommend mode, its recommended ones)

    @property
    def total(self) -> int:
        return self.on_disk + self.transfers - self.freed

    @property
    def fits(self) -> bool:
        return self.total <= self.budget


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    generation: str
    created_at: datetime
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # problems that make the plan incomplete (exit 1)
    disk: Disk | None = None  # the cache filesystem as observed, for the fit check
    withheld: tuple[Withheld, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()
    budget: BudgetFit | None = None
    retention_mode: RetentionMode = RetentionMode.ENFORCE

    @property
    def download_bytes(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind in TRANSFER_KINDS)

    @property
    def verify_bytes(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind is ActionKind.VERIFY)

    @property
    def freed_bytes(self) -> int:
        return sum(a.bytes for a in self.actions if a.kind is ActionKind.DELETE)

    @property
    def empty(self) -> bool:
        return not self.actions

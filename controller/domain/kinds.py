"""The vocabulary every stage shares: phases, priorities, policies, action kinds, reasons.

Enums rather than strings, so a typo is a type error and the status, the plan and the API
spell each word one way.
"""

from __future__ import annotations

import re
from enum import Enum

# The one schema version of everything modelsync reads or writes: manifests, locks, status.
API_VERSION = "modelsync/v1"
# A commit id and a sha256 as hex, whole: ``\Z`` rather than ``$``, which would also accept a
# trailing newline (a ref file's, say) and so pass for a different string than it checked.
COMMIT_RE = re.compile(r"^[0-9a-f]{40}\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")


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
    MALFORMED_ANSWER = "MalformedAnswer"  # the hub's answer lacks or garbles a field
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
    # Work stopped halfway: a deletion killed midway (finished by the next pass), or a
    # transfer stopped by Ctrl-C or a shutdown (its partial files kept for the next pass).
    INTERRUPTED = "Interrupted"
    IN_USE = "InUse"  # a live lease holds the model: deletions and ref switches wait
    # An old revision kept for a while after the ref moved away from it: applications that
    # resolved it just before the switch may still be reading its files.
    GRACE_PERIOD = "GracePeriod"
    RECOMMEND_ONLY = "RecommendOnly"  # retention.mode is recommend: shown, never applied
    EVICTED = "Evicted"  # an on-demand model retention deleted; fetched again when requested
    DELETE_FAILED = "DeleteFailed"
    # Damaged bytes moved to .quarantine/ a grace period ago (retention.quarantine_grace).
    QUARANTINE_EXPIRED = "QuarantineExpired"

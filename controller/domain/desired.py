"""The desired state: what the manifests declare, with every default applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from controller.domain.kinds import Policy, Priority, RetentionMode, UpdatePolicy


@dataclass(frozen=True)
class Probe:
    """A command that loads the model for real; exit status 0 means healthy."""

    command: tuple[str, ...]
    timeout_s: float = 300.0


# The branch every Hub repo is created with, and a model's revision unless it names another.
DEFAULT_BRANCH = "main"


@dataclass(frozen=True)
class DesiredModel:
    """One model as the manifest declares it, with defaults already applied."""

    name: str
    repo: str
    revision: str = DEFAULT_BRANCH
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
    # How long damaged bytes stay in .quarantine/ for whoever investigates them.
    quarantine_grace: timedelta = timedelta(days=7)


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
    # The low-speed floor (bytes per second over a window of seconds; 0: off): files' bodies
    # and the hub's answers about revisions slower than this are cut.
    min_speed: int = 1000
    min_speed_window: float = 30.0

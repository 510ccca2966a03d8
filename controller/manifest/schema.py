"""The schema of a manifest: one YAML document of kind ``ModelSet``, section by section.

The field descriptions are the reference users read (``reconcile schema``), so they say what a
setting does, its unit and its default.

Key style
    Keys are lower case and multi-word keys are snake_case (``max_unused_days``,
    ``max_bandwidth``), the spelling of the seed's retention policy.  Exactly two keys are
    camelCase: ``apiVersion``, spelled as in every Kubernetes-style manifest, and
    ``spec.statusFile``.  A key in the other style (``status_file``, ``maxUnusedDays``) is
    rejected with a did-you-mean naming the right spelling.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from controller.domain import Policy, Priority, UpdatePolicy
from controller.manifest.fields import (
    NAME_PATTERN,
    Bandwidth,
    Duration,
    Endpoint,
    Glob,
    LocalPath,
    ModelName,
    RepoId,
    Revision,
    Text,
    parse_bandwidth,
    parse_duration,
)

KIND = "ModelSet"


class _Section(BaseModel):
    # strict: YAML already types its values, so "8" for an integer is a mistake to report, not
    # a string to coerce.  frozen: a parsed manifest is a value, shared by the whole loop.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Metadata(_Section):
    """Identifies the ModelSet."""

    name: ModelName = Field(
        json_schema_extra={"pattern": NAME_PATTERN},
        description="Name of this set of models, e.g. 'wan2.2'.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form string labels, for people and tooling."
    )


class Retention(_Section):
    """When models that modelsync owns may be deleted to stay within the disk budget.

    modelsync only ever deletes what it owns (downloaded, or adopted), never a model in use,
    never a model declared `policy: always`, and always shows a deletion in the plan first.
    Applies to every manifest of a directory: declare it once.
    """

    max_unused_days: int = Field(
        default=30,
        ge=0,
        description="An on-demand model that was neither used nor downloaded for more than this "
        "many days is evicted (only uses within usage.window_days are remembered).",
    )
    max_storage_usage_percent: float = Field(
        default=80.0,
        gt=0,
        le=100,
        description="The share of the cache's filesystem that the models modelsync manages may "
        "take. Over it, on-demand models used less than min_usage_frequency are evicted, least "
        "valuable first; a plan that does not fit even then is an error.",
    )
    min_usage_frequency: float = Field(
        default=0.1,
        ge=0,
        description="On-demand models used less often than this (uses per day) may be evicted "
        "to fit the budget.",
    )
    preserve_recently_downloaded: bool = Field(
        default=True,
        description="Never evict a model downloaded in the last 7 days.",
    )
    preserve_high_priority: bool = Field(
        default=True,
        description="Never evict a model whose effective priority is critical or high.",
    )
    mode: Literal["enforce", "recommend"] = Field(
        default="enforce",
        description="enforce: plans include the deletions and apply carries them out; "
        "recommend: plans and the status show the deletions, and nothing is ever deleted.",
    )
    old_revision_grace: Duration = Field(
        default="10m",
        description="How long an old revision stays once the model's ref has moved away from "
        "it (an update, a new revision): an application that resolved its files just before "
        "the switch may still be loading them. Until then its deletion is shown as held back.",
    )
    quarantine_grace: Duration = Field(
        default="7d",
        description="How long a damaged file moved out of its snapshot (to the repo's "
        ".quarantine/, when it failed its hash) is kept for whoever investigates it before "
        "retention deletes it. Its bytes count toward the disk budget meanwhile.",
    )


class Downloads(_Section):
    """How downloads run.  Applies to every manifest of a directory: declare it once."""

    concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Files downloaded at the same time; also the connections open at once, "
        "which connections_per_file draws its extra connections from.",
    )
    connections_per_file: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Connections a file larger than 64 MiB is fetched over, as byte ranges "
        "(hubs and CDNs cap each connection's speed). Extra connections are opened only "
        "while fewer than `concurrency` are open, and shared fairly among the files "
        "downloading; 1 fetches every file over one connection.",
    )
    max_bandwidth: Bandwidth | None = Field(
        default=None,
        description="Overall download rate limit such as '50MB/s' (units B, kB, MB, GB, KiB, "
        "MiB, GiB); null for no limit.",
        examples=["50MB/s"],
    )

    min_speed: Bandwidth | None = Field(
        default="1kB/s",
        description="A transfer (a file's body, a revision look-up) that averages less than "
        "this over min_speed_window is cut and resumed from the bytes on disk over a new "
        "connection, as curl's --speed-limit does: a hub that trickles is not waited on "
        "forever. The default cuts a trickle within half a minute and leaves a slow but "
        "honest link alone; null turns the watchdog off.",
        examples=["1kB/s"],
    )
    min_speed_window: Duration = Field(
        default="30s",
        description="The window min_speed is averaged over; a connection silent this long "
        "is cut too.",
    )

    @property
    def max_bandwidth_bytes(self) -> int | None:
        """The limit in bytes per second, or None when unlimited."""
        return None if self.max_bandwidth is None else parse_bandwidth(self.max_bandwidth)

    @property
    def min_speed_bytes(self) -> int:
        """The speed floor in bytes per second; 0 when the watchdog is off."""
        return 0 if self.min_speed is None else parse_bandwidth(self.min_speed)

    @property
    def min_speed_seconds(self) -> float:
        return parse_duration(self.min_speed_window)


class Usage(_Section):
    """How usage records are kept.  Applies to every manifest of a directory: declare it once."""

    window_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days of usage history kept in the state database (older uses are "
        "pruned); uses per day, and so auto priorities, are averaged over this window.",
    )


class Controller(_Section):
    """How `reconcile --watch` runs.  Applies to every manifest of a directory: declare it once.

    Every interval is a duration like '30s', '5m', '1h' or '1d'; null turns a check off.
    """

    resync_interval: Duration = Field(
        default="1m",
        description="Reconcile against the cache and the hub's last answer this often, without "
        "asking the hub: picks up files changed on disk, requests and pauses made elsewhere.",
    )
    update_check_interval: Duration | None = Field(
        default="1h",
        description="Ask the hub whether revisions moved this often (updates: notify reports, "
        "auto downloads).",
    )
    health_check_interval: Duration | None = Field(
        default="24h",
        description="Re-hash every file this often (a scrub: `reconcile verify --full`); "
        "damage is repaired by the reconcile that follows.",
    )
    retry_backoff: Duration = Field(
        default="30s",
        description="A model whose apply failed waits this long before its next attempt, "
        "doubling with each further failure; the other models go on meanwhile.",
    )
    retry_backoff_max: Duration = Field(
        default="1h", description="The longest wait between attempts of a failing model."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP API listens on. Any address but loopback needs a bearer "
        "token in MODELSYNC_API_TOKEN.",
    )
    port: int = Field(default=8477, ge=0, le=65535, description="HTTP API port; 0: any free one.")

    def seconds(self, interval: str | None) -> float | None:
        return None if interval is None else parse_duration(interval)


class ProbeSpec(_Section):
    """A real load test, run by health checks once every file of the model is verified."""

    command: list[Text] = Field(
        min_length=1,
        description="Program and arguments (no shell; use ['sh', '-c', '...'] for one). It runs "
        "with HF_HUB_OFFLINE=1, HF_HUB_CACHE, MODELSYNC_MODEL, MODELSYNC_REPO, "
        "MODELSYNC_REVISION, MODELSYNC_COMMIT and MODELSYNC_SNAPSHOT (the snapshot directory) "
        "set; exit status 0 means healthy.",
        examples=[["python", "-c", "import safetensors"]],
    )
    timeout: Duration = Field(
        default="5m", description="How long the probe may run before it counts as failed."
    )


class ModelSpec(_Section):
    """One model: a Hugging Face Hub repo at a revision, narrowed to the files it needs."""

    name: ModelName = Field(
        json_schema_extra={"pattern": NAME_PATTERN},
        description="Unique name across all manifests (1-63 of letters, digits, '.', '_', '-'); "
        "applications request the model by this name.",
        examples=["t2v-A14B"],
    )
    repo: RepoId = Field(
        description="Hub repo id 'org/name' (letters, digits, '-', '_', '.'; at most 96 "
        "characters; no '--' or '..').",
        examples=["Wan-AI/Wan2.2-T2V-A14B"],
    )
    revision: Revision = Field(
        default="main", description="Branch, tag or 40-hex commit to keep present. Default: main."
    )
    include: list[Glob] = Field(
        default_factory=list,
        description="Glob patterns of repo files to download (huggingface_hub allow_patterns: "
        "'*' also matches '/', a pattern ending in '/' selects a folder). Empty: every file.",
        examples=[["*.safetensors", "*.json"]],
    )
    exclude: list[Glob] = Field(
        default_factory=list,
        description="Glob patterns of repo files never to download, applied after include.",
    )
    priority: Priority = Field(
        default=Priority.AUTO,
        strict=False,  # the YAML string "high" must become Priority.HIGH
        description="Order of work: critical | high | medium | low, or auto to derive it from "
        "usage (>1 use/day high, >0.1 medium, else low). Usage never lowers a declared priority.",
    )
    policy: Policy = Field(
        default=Policy.ALWAYS,
        strict=False,
        description="always: keep the model present; on-demand: download it only when requested.",
    )
    updates: UpdatePolicy = Field(
        default=UpdatePolicy.NOTIFY,
        strict=False,
        description="When the revision moves upstream: auto downloads the new commit, notify "
        "reports it, off ignores it.",
    )
    suspend: bool = Field(
        default=False,
        description="Leave this model alone: no downloads, repairs, updates or deletions.",
    )
    adopt: bool = Field(
        default=False,
        description="Take ownership of this model's files already in the cache (downloaded by "
        "another tool), so that retention may delete them once they are no longer needed. "
        "Without it, modelsync only ever deletes files it downloaded itself.",
    )
    probe: ProbeSpec | None = Field(
        default=None,
        description="Optional load test run by health checks (`reconcile verify`, the "
        "controller's schedule); a failing probe makes the model FAILED (ProbeFailed).",
    )
    description: str | None = Field(default=None, description="What the model is for, for people.")
    tags: list[Text] = Field(default_factory=list, description="Free-form tags.")
    alternatives: list[ModelName] = Field(
        default_factory=list,
        description="Names of declared models that can serve requests while this one is not "
        "available, best first.",
    )


class Spec(_Section):
    """What should be present, and where.

    cache, state, endpoint, statusFile, retention and downloads apply to the whole directory of
    manifests; set each in one manifest (or identically).  Relative paths are relative to the
    manifest's directory; '~' is expanded.
    """

    cache: LocalPath | None = Field(
        default=None,
        description="Hugging Face cache root (models--org--name/...). Default: HF_HUB_CACHE, "
        "else $HF_HOME/hub, else ~/.cache/huggingface/hub.",
    )
    state: LocalPath | None = Field(
        default=None,
        description="Directory of modelsync's state database. Default: $XDG_STATE_HOME/modelsync, "
        "else ~/.local/state/modelsync.",
    )
    endpoint: Endpoint | None = Field(
        default=None,
        description="Hub endpoint URL; a mirror or `reconcile serve` works the same. Default: "
        "HF_ENDPOINT, else https://huggingface.co.",
    )
    status_file: LocalPath | None = Field(
        default=None,
        alias="statusFile",
        description="Where the status is written. Default: <state>/status.yaml.",
    )
    suspend: bool = Field(default=False, description="Suspend every model of this manifest.")
    retention: Retention = Field(default_factory=Retention)
    downloads: Downloads = Field(default_factory=Downloads)
    usage: Usage = Field(default_factory=Usage)
    controller: Controller = Field(default_factory=Controller)
    models: list[ModelSpec] = Field(default_factory=list, description="The models to manage.")


class ModelSetManifest(_Section):
    """A modelsync manifest: a set of models to keep present, intact and within a disk budget."""

    api_version: Literal["modelsync/v1"] = Field(alias="apiVersion", description="Schema version.")
    kind: Literal["ModelSet"] = Field(description="Document kind.")
    metadata: Metadata
    spec: Spec


# The spec sections that apply to every manifest of a directory, by key.
SHARED_SECTIONS: dict[str, type[BaseModel]] = {
    "retention": Retention,
    "downloads": Downloads,
    "usage": Usage,
    "controller": Controller,
}


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document (``reconcile schema``)."""
    schema = ModelSetManifest.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "modelsync ModelSet manifest",
        **{k: v for k, v in schema.items() if k != "title"},
    }

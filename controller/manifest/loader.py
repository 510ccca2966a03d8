"""The manifest: what people write, how it is checked, and what it means.

A manifest is one YAML document of kind ``ModelSet``; ``-f`` may also name a directory, whose
manifests are merged.  Loading either succeeds completely or raises :class:`ManifestError` with
*every* problem of *every* file, each as ``file:line: path: message`` -- a pull request should
show all of its mistakes in one CI run, not one per push.

Key style
    Keys are lower case and multi-word keys are snake_case (``max_unused_days``,
    ``max_bandwidth``), the spelling of the seed's retention policy.  Exactly two keys are
    camelCase: ``apiVersion``, spelled as in every Kubernetes-style manifest, and
    ``spec.statusFile``.  A key in the other style (``status_file``, ``maxUnusedDays``) is
    rejected with a did-you-mean naming the right spelling.

YAML dialect
    Documents are read with PyYAML's safe loader, except that booleans follow YAML 1.2: only
    ``true``/``false`` are booleans.  Under YAML 1.1 ``updates: off`` would silently become
    ``false``; here it is the string ``off``, and ``suspend: yes`` is reported instead of being
    guessed.  Values are not coerced: ``revision: 2024`` is an integer and is reported (quote it).
    Duplicate keys, which PyYAML silently resolves to the last one, are reported.

Generation
    :attr:`ManifestSet.generation` hashes the *parsed* documents with defaults filled in, plus the
    resolved spec-level settings.  Comment, whitespace and quoting edits, or spelling out a
    default, leave it unchanged; any change of meaning changes it.

Secrets
    Tokens never belong in a manifest (manifests live in git).  A ``token`` key (or ``*_token``)
    anywhere, an endpoint URL carrying credentials, or a value that looks like a Hugging Face
    token is rejected, and no message ever repeats the secret.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from controller.domain import (
    DesiredModel,
    DesiredState,
    Policy,
    Priority,
    Probe,
    RetentionMode,
    RetentionPolicy,
    UpdatePolicy,
)

KIND = "ModelSet"
DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_MESSAGE = "tokens do not belong in manifests; set HF_TOKEN or run `hf auth login`"

# A document with more nodes than this is rejected: aliases can make a few lines of YAML expand
# exponentially ("billion laughs"), and `--plan` runs in CI on pull requests from anyone.
_MAX_NODES = 100_000

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- field checks
#
# Each check returns the value or raises ValueError with the message users see.  ValueError
# (rather than PydanticCustomError) because its text is not a format template, so values with
# braces -- globs like "*.{json,txt}" -- are safe to echo.

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_BANDWIDTH_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)/s$")
_BANDWIDTH_UNITS = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_SECRET_KEY_RE = re.compile(r"^(?:.*[_-])?token$", re.IGNORECASE)
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"invalid name {_show(value)}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "\\", "~", "./")) or bool(_WINDOWS_DRIVE_RE.match(value))


def _check_repo(value: str) -> str:
    """huggingface_hub's ``validate_repo_id`` rules, stated so that users can act on them.

    The id becomes a cache directory name (``models--org--name``), so path-like forms are
    refused outright, and ``--`` is refused because it is the separator of that name.
    """
    shown = _show(value)
    if _looks_like_path(value) or value in (".", ".."):
        raise ValueError(f"invalid repo id {shown}: expected a Hub repo id 'org/name', not a path")
    parts = value.split("/")
    if len(parts) > 2:
        raise ValueError(f"invalid repo id {shown}: expected 'org/name' with at most one '/'")
    if len(value) > 96:
        raise ValueError(f"invalid repo id {shown}: longer than 96 characters")
    for part in parts:
        if not part or not _REPO_PART_RE.match(part):
            raise ValueError(
                f"invalid repo id {shown}: each part must be letters, digits, '-', '_' or '.'"
            )
        if part[0] in "-." or part[-1] in "-.":
            raise ValueError(f"invalid repo id {shown}: a part cannot start or end with '-' or '.'")
    if "--" in value or ".." in value:
        raise ValueError(f"invalid repo id {shown}: '--' and '..' are not allowed")
    if value.endswith(".git"):
        raise ValueError(f"invalid repo id {shown}: cannot end with '.git'")
    return value


def _check_revision(value: str) -> str:
    # A revision becomes a path under refs/ in the cache and a URL segment: keep it inert there.
    shown = _show(value)
    if not value:
        raise ValueError("revision must not be empty; use a branch, tag or commit such as 'main'")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"invalid revision {shown}: no whitespace or control characters allowed")
    if ".." in value or value.startswith("/") or "\\" in value:
        raise ValueError(f"invalid revision {shown}: '..', '\\' and a leading '/' are not allowed")
    return value


def _check_glob(value: str) -> str:
    # Patterns are matched against paths inside a repo; one that could only match outside it is
    # a mistake (or an attempt to escape the cache), so it is refused rather than ignored.
    if not value.strip():
        raise ValueError("patterns must not be empty")
    if value.startswith(("/", "\\")) or _WINDOWS_DRIVE_RE.match(value):
        raise ValueError(f"pattern {_show(value)} is absolute; patterns are relative to the repo")
    if ".." in re.split(r"[/\\]", value):
        raise ValueError(f"pattern {_show(value)} contains a '..' segment")
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _check_local_path(value: str) -> str:
    if not value.strip():
        raise ValueError("path must not be empty")
    if "\0" in value:
        raise ValueError("path must not contain NUL characters")
    return value


def _check_endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid endpoint {_show(value)}: expected an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(TOKEN_MESSAGE)
    if parts.query or parts.fragment:
        raise ValueError(f"invalid endpoint {_show(value)}: no query string or fragment")
    return value


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str) -> float:
    """Seconds in a duration such as '30s', '5m', '1.5h', '1d' or '250ms'."""
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise ValueError(
            f"invalid duration {_show(value)}: expected a number and a unit like '30s', '5m' "
            f"(units: {', '.join(_DURATION_UNITS)})"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {_show(value)}: must be more than 0")
    return seconds


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _parse_bandwidth(value: str) -> int:
    match = _BANDWIDTH_RE.match(value.strip())
    if not match:
        raise ValueError(
            f"invalid bandwidth {_show(value)}: expected a rate like '50MB/s' "
            f"(units: {', '.join(_BANDWIDTH_UNITS)})"
        )
    rate = int(float(match.group(1)) * _BANDWIDTH_UNITS[match.group(2)])
    if rate <= 0:
        raise ValueError(f"invalid bandwidth {_show(value)}: must be more than 0")
    return rate


def _check_bandwidth(value: str) -> str:
    _parse_bandwidth(value)
    return value


ModelName = Annotated[str, AfterValidator(_check_name)]
RepoId = Annotated[str, AfterValidator(_check_repo)]
Revision = Annotated[str, AfterValidator(_check_revision)]
Glob = Annotated[str, AfterValidator(_check_glob)]
Text = Annotated[str, AfterValidator(_check_text)]
LocalPath = Annotated[str, AfterValidator(_check_local_path)]
Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
Bandwidth = Annotated[str, AfterValidator(_check_bandwidth)]
Duration = Annotated[str, AfterValidator(_check_duration)]


# --------------------------------------------------------------------------- schema


class _Section(BaseModel):
    # strict: YAML already types its values, so "8" for an integer is a mistake to report, not
    # a string to coerce.  frozen: a parsed manifest is a value, shared by the whole loop.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Metadata(_Section):
    """Identifies the ModelSet."""

    name: ModelName = Field(
        json_schema_extra={"pattern": _NAME_RE.pattern},
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


class Downloads(_Section):
    """How downloads run.  Applies to every manifest of a directory: declare it once."""

    concurrency: int = Field(
        default=8, ge=1, le=64, description="Files downloaded at the same time."
    )
    max_bandwidth: Bandwidth | None = Field(
        default=None,
        description="Overall download rate limit such as '50MB/s' (units B, kB, MB, GB, KiB, "
        "MiB, GiB); null for no limit.",
        examples=["50MB/s"],
    )

    @property
    def max_bandwidth_bytes(self) -> int | None:
        """The limit in bytes per second, or None when unlimited."""
        return None if self.max_bandwidth is None else _parse_bandwidth(self.max_bandwidth)


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
        json_schema_extra={"pattern": _NAME_RE.pattern},
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


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document (``reconcile schema``)."""
    schema = ModelSetManifest.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "modelsync ModelSet manifest",
        **{k: v for k, v in schema.items() if k != "title"},
    }


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, in the ``file:line: path: message`` form of compilers.

    ``line`` is 1-based, or 0 when the problem is about the path itself (missing, unreadable).
    ``path`` is the place in the document (``spec.models[1].repo``), ``(document)`` for the
    document as a whole, or ``-`` for the file system path.
    """

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ManifestError(Exception):
    """Invalid manifests; ``problems`` lists every problem found, in file and line order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class DeclaredModel:
    spec: ModelSpec
    source: str  # "file:line" of the model's entry
    suspend: bool  # the model's own suspend, or its manifest's spec.suspend


@dataclass(frozen=True)
class ManifestFile:
    path: str  # as shown in messages: the path given, joined with the file name
    manifest: ModelSetManifest
    models: tuple[DeclaredModel, ...]


@dataclass(frozen=True)
class ManifestSet:
    """Valid manifests, merged.  Paths are absolute; None means "not set, use the default"."""

    files: tuple[ManifestFile, ...]
    cache: str | None
    state: str | None
    endpoint: str | None
    status_file: str | None
    retention: Retention
    downloads: Downloads
    generation: str
    usage: Usage = field(default_factory=Usage)
    controller: Controller = field(default_factory=Controller)

    @property
    def models(self) -> tuple[DeclaredModel, ...]:
        return tuple(m for f in self.files for m in f.models)


# --------------------------------------------------------------------------- YAML reading

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, so that ``updates: off`` stays the string ``off``."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ManifestLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class _Where:
    key_line: int | None  # line of the key, for a mapping entry
    value_line: int


class _TooLarge(Exception):
    pass


@dataclass
class _Document:
    """One file as read: its plain data, where each part of it is, and what is wrong with it."""

    file: str
    base_dir: Path
    data: Any = None
    where: dict[Loc, _Where] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    manifest: ModelSetManifest | None = None
    # Where the reader already reported a value it could not read (and left None): schema
    # errors there would only repeat the problem.
    unreadable: set[Loc] = field(default_factory=set)

    def report(self, line: int, loc: Loc | str, message: str) -> None:
        path = loc if isinstance(loc, str) else _format_loc(loc)
        self.problems.append(Problem(self.file, line, path, message))

    def line(self, loc: Loc, at_key: bool = False) -> int:
        """The line of ``loc``; for a part that is absent, the line of what should hold it."""
        found = self.where.get(loc)
        if found is not None:
            return found.key_line if at_key and found.key_line is not None else found.value_line
        for end in range(len(loc) - 1, -1, -1):
            parent = self.where.get(loc[:end])
            if parent is not None:
                return parent.key_line or parent.value_line
        return 1


def _node_line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _TreeReader:
    """Turns a composed node tree into plain data, recording the line of every part.

    PyYAML's constructor would give the same data but forgets positions and silently drops
    duplicate keys; walking the nodes ourselves keeps both.
    """

    def __init__(self, loader: _ManifestLoader, doc: _Document) -> None:
        self._loader = loader
        self._doc = doc
        self._budget = _MAX_NODES
        self._active: set[int] = set()  # nodes being read, to detect recursive aliases

    def read(self, node: Node, loc: Loc, key_line: int | None) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise _TooLarge
        self._doc.where[loc] = _Where(key_line, _node_line(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        if id(node) in self._active:
            return self._unreadable(node, loc, "recursive YAML alias")
        if node.tag not in (_MAP_TAG, _SEQ_TAG):
            return self._unreadable(node, loc, f"unsupported YAML tag '{node.tag}'")
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, loc)
            assert isinstance(node, SequenceNode)
            return [self.read(item, (*loc, i), None) for i, item in enumerate(node.value)]
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        try:
            value = self._loader.construct_object(node)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            return self._unreadable(node, loc, f"cannot read value: {problem}")
        if isinstance(value, str) and _HF_TOKEN_RE.search(value):
            self._doc.report(
                _node_line(node), loc, f"this looks like a Hugging Face token; {TOKEN_MESSAGE}"
            )
        return value

    def _unreadable(self, node: Node, loc: Loc, message: str) -> None:
        self._doc.report(_node_line(node), loc, message)
        self._doc.unreadable.add(loc)

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        own = self._doc.where[loc]
        result: dict[str, Any] = {}
        # `<<: *defaults` merges are applied first so that explicit keys override them, and in
        # reverse so that earlier merge sources win, as the YAML merge-key spec says.
        merges = [v for k, v in node.value if k.tag == _MERGE_TAG]
        for source in reversed(self._merge_sources(merges, loc)):
            merged = self.read(source, loc, own.key_line)
            if isinstance(merged, dict):
                result.update(merged)
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(key_node, loc)
            if key is None:
                continue
            key_line = _node_line(key_node)
            if key in first_seen:
                self._doc.report(
                    key_line,
                    (*loc, key),
                    f"duplicate key '{key}' (first at line {first_seen[key]}); "
                    "YAML would silently keep only the last one",
                )
            else:
                first_seen[key] = key_line
            if _SECRET_KEY_RE.match(key):
                self._doc.report(key_line, (*loc, key), TOKEN_MESSAGE)
                continue
            result[key] = self.read(value_node, (*loc, key), key_line)
        self._doc.where[loc] = own
        return result

    def _merge_sources(self, merges: list[Node], loc: Loc) -> list[Node]:
        sources: list[Node] = []
        for value in merges:
            items = value.value if isinstance(value, SequenceNode) else [value]
            for item in items:
                if isinstance(item, MappingNode):
                    sources.append(item)
                else:
                    self._doc.report(_node_line(item), loc, "'<<' must merge mappings")
        return sources

    def _key(self, node: Node, loc: Loc) -> str | None:
        key = self._scalar(node, loc) if isinstance(node, ScalarNode) else None
        if isinstance(key, str):
            return key
        got = _type_name(key) if isinstance(node, ScalarNode) else "a collection"
        self._doc.report(_node_line(node), loc, f"keys must be strings, got {got}")
        return None


def _read_text(path: Path, doc: _Document) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        doc.report(0, "-", f"cannot read: {exc.strerror or exc}")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        doc.report(raw.count(b"\n", 0, exc.start) + 1, "(document)", "not UTF-8 text")
        return None


def _yaml_error_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # ReaderError: a character offset
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _yaml_error_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        return "invalid YAML: " + ("; ".join(parts) if parts else "syntax error")
    if isinstance(exc, yaml.reader.ReaderError):
        return f"invalid YAML: character #x{exc.character:04x} is not allowed"
    return f"invalid YAML: {exc}"


def _read_root(loader: _ManifestLoader, doc: _Document) -> None:
    root = loader.get_single_node()
    if root is None:
        doc.report(1, "(document)", f"empty file; expected a {KIND} manifest")
    elif not isinstance(root, MappingNode):
        got = "a list" if isinstance(root, SequenceNode) else "a scalar"
        doc.report(
            _node_line(root),
            "(document)",
            f"expected a mapping (apiVersion, kind, metadata, spec) at the top, got {got}",
        )
    else:
        doc.data = _TreeReader(loader, doc).read(root, (), None)


def _read_document(path: Path, display: str) -> _Document:
    doc = _Document(file=display, base_dir=path.absolute().parent)
    text = _read_text(path, doc)
    if text is None:
        return doc
    try:
        loader = _ManifestLoader(text)  # already rejects control characters
    except yaml.YAMLError as exc:
        doc.report(_yaml_error_line(exc, text), "(document)", _yaml_error_message(exc))
        return doc
    try:
        _read_root(loader, doc)
    except yaml.YAMLError as exc:
        doc.report(_yaml_error_line(exc, text), "(document)", _yaml_error_message(exc))
    except _TooLarge:
        doc.report(1, "(document)", f"document has more than {_MAX_NODES} nodes (alias bomb?)")
    finally:
        loader.dispose()
    return doc


# --------------------------------------------------------------------------- validation messages


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"


def _show(value: object) -> str:
    """A value for a message: quoted, shortened, and never a secret."""
    text = str(value)
    if _HF_TOKEN_RE.search(text):
        return "'<redacted>'"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'" if isinstance(value, str) else text


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, date):
        return "date"
    return type(value).__name__


def _strip(annotation: Any) -> Any:
    """The type under Annotated[...] and Optional[...]."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _annotation_at(loc: Loc) -> Any:
    """The schema type expected at ``loc``, or None where the schema says nothing."""
    annotation: Any = ModelSetManifest
    for part in loc:
        annotation = _strip(annotation)
        origin = get_origin(annotation)
        if isinstance(part, int):
            annotation = get_args(annotation)[0] if origin is list else None
        elif _is_model(annotation):
            fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
            annotation = fields[part].annotation if part in fields else None
        elif origin is dict:
            annotation = get_args(annotation)[1]
        else:
            return None
    return _strip(annotation)


def _allowed_values(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    return [str(arg) for arg in get_args(annotation)]


def _describe(annotation: Any, plural: bool = False) -> str:
    """How a type reads in "expected ..." messages."""
    annotation = _strip(annotation)
    origin = get_origin(annotation)
    if origin is list:
        return "lists" if plural else "a list of " + _describe(get_args(annotation)[0], plural=True)
    if origin is dict:
        return "mappings" if plural else "a mapping of strings to strings"
    if origin is Literal or (isinstance(annotation, type) and issubclass(annotation, Enum)):
        return "one of: " + ", ".join(_allowed_values(annotation))
    if _is_model(annotation):
        return "mappings" if plural else "a mapping"
    names = {
        str: ("a string", "strings"),
        bool: ("true or false", "booleans"),
        int: ("an integer", "integers"),
        float: ("a number", "numbers"),
    }
    if annotation in names:
        return names[annotation][1 if plural else 0]
    return "a valid value"


def _unknown_field(loc: Loc) -> str:
    key = str(loc[-1])
    parent = _annotation_at(loc[:-1])
    allowed = _field_names(parent) if _is_model(parent) else []
    message = f"unknown field '{key}'"
    suggestion = _suggest(key, allowed)
    if suggestion:
        return f"{message}; did you mean '{suggestion}'?"
    return f"{message}; allowed: {', '.join(allowed)}" if allowed else message


def _normalized_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _suggest(word: str, choices: list[str]) -> str | None:
    # Style slips (maxUnusedDays, status_file) first, since difflib scores them poorly.
    for choice in choices:
        if _normalized_key(choice) == _normalized_key(word):
            return choice
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _type_mismatch(loc: Loc, value: object) -> str:
    expected = _annotation_at(loc)
    message = f"expected {_describe(expected)}, got {_type_name(value)}"
    if expected is str and isinstance(value, (int, float, bool, date)):
        message += "; quote it to make it a string"
    return message


def _bad_choice(loc: Loc, value: object) -> str:
    allowed = ", ".join(_allowed_values(_annotation_at(loc)))
    if not isinstance(value, str):
        return f"expected one of: {allowed}, got {_type_name(value)}"
    if loc == ("apiVersion",):
        return f"unsupported apiVersion {_show(value)}; supported: {allowed}"
    if loc == ("kind",):
        return f"unsupported kind {_show(value)}; supported: {allowed}"
    return f"invalid value {_show(value)}; expected one of: {allowed}"


_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "less_than_equal": ("le", "at most"),
    "greater_than": ("gt", "more than"),
    "less_than": ("lt", "less than"),
}


def _error_message(error: ErrorDetails, loc: Loc) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind == "missing":
        return f"missing required field '{loc[-1]}'"
    if kind in ("literal_error", "enum"):
        return _bad_choice(loc, value)
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(name)}, got {_show(value)}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "finite_number":
        return "must be a finite number"
    if kind.endswith("_type") or kind == "int_from_float":
        return _type_mismatch(loc, value)
    return str(error["msg"])


def _validate(doc: _Document) -> None:
    try:
        doc.manifest = ModelSetManifest.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
            if any(loc[: len(u)] == u for u in doc.unreadable):
                continue
            at_key = error["type"] == "extra_forbidden" or error["loc"][-1:] == ("[key]",)
            doc.report(doc.line(loc, at_key=at_key), loc, _error_message(error, loc))


# --------------------------------------------------------------------------- checks across files


def _raw_spec(doc: _Document) -> dict[str, Any]:
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    return spec if isinstance(spec, dict) else {}


def _raw_models(doc: _Document) -> Iterator[tuple[int, dict[str, Any]]]:
    """Model entries as written -- checked even in a file with other errors, so that one
    mistake does not hide (or fake) duplicate and unknown-name problems elsewhere."""
    models = _raw_spec(doc).get("models")
    if isinstance(models, list):
        for index, entry in enumerate(models):
            if isinstance(entry, dict):
                yield index, entry


def _check_duplicate_names(docs: list[_Document]) -> None:
    first: dict[str, str] = {}
    for doc in docs:
        for index, entry in _raw_models(doc):
            name = entry.get("name")
            if not isinstance(name, str):
                continue
            loc: Loc = ("spec", "models", index, "name")
            here = f"{doc.file}:{doc.line(loc)}"
            if name in first:
                doc.report(
                    doc.line(loc),
                    loc,
                    f"duplicate model name '{name}'; already declared at {first[name]} "
                    "(names are unique across all manifests)",
                )
            else:
                first[name] = here


def _check_alternatives(docs: list[_Document]) -> None:
    names = (entry.get("name") for doc in docs for _, entry in _raw_models(doc))
    declared = sorted({name for name in names if isinstance(name, str)})
    # A file that could not be read at all may declare the missing names: saying they are
    # unknown would send people after the wrong mistake.
    all_read = all(isinstance(doc.data, dict) for doc in docs)
    for doc in docs:
        for index, entry in _raw_models(doc):
            alternatives = entry.get("alternatives")
            if not isinstance(alternatives, list):
                continue
            for position, name in enumerate(alternatives):
                loc: Loc = ("spec", "models", index, "alternatives", position)
                if not isinstance(name, str):
                    continue  # reported by the document's own validation
                if name == entry.get("name"):
                    doc.report(doc.line(loc), loc, "a model cannot be its own alternative")
                    continue
                if name in declared or not all_read:
                    continue
                suggestion = _suggest(name, declared)
                hint = f"; did you mean '{suggestion}'?" if suggestion else ""
                doc.report(doc.line(loc), loc, f"no model named {_show(name)} is declared{hint}")


# Spec-level settings are one per machine, so every manifest of a directory must agree on them.
_SHARED_SETTINGS = (
    "cache",
    "state",
    "endpoint",
    "statusFile",
    "retention",
    "downloads",
    "usage",
    "controller",
)
_PATH_SETTINGS = ("cache", "state", "statusFile")


def _resolve_path(value: str, base_dir: Path) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _comparable(key: str, value: Any, base_dir: Path) -> Any:
    """A setting's meaning, so that spellings of the same value do not count as a conflict."""
    if key in _PATH_SETTINGS and isinstance(value, str):
        return _resolve_path(value, base_dir)
    if key == "endpoint" and isinstance(value, str):
        return value.rstrip("/")
    sections: dict[str, type[BaseModel]] = {
        "retention": Retention,
        "downloads": Downloads,
        "usage": Usage,
        "controller": Controller,
    }
    section = sections.get(key)
    if section is not None:
        try:
            return section.model_validate(value).model_dump()
        except ValidationError:
            return value  # already reported by the document's own validation
    return value


def _check_conflicts(docs: list[_Document]) -> None:
    for key in _SHARED_SETTINGS:
        declared = [(d, _raw_spec(d)[key]) for d in docs if _raw_spec(d).get(key) is not None]
        if len(declared) < 2:
            continue
        first_doc, first_value = declared[0]
        expected = _comparable(key, first_value, first_doc.base_dir)
        first_at = f"{first_doc.file}:{first_doc.line(('spec', key), at_key=True)}"
        for doc, value in declared[1:]:
            if _comparable(key, value, doc.base_dir) != expected:
                loc: Loc = ("spec", key)
                doc.report(
                    doc.line(loc, at_key=True),
                    loc,
                    f"conflicts with {first_at}; spec.{key} applies to every manifest, "
                    "so set it in one of them (or identically)",
                )


# --------------------------------------------------------------------------- loading


def _is_manifest_name(name: str) -> bool:
    # Lock files are written beside manifests; hidden files are editor droppings.
    if name.startswith(".") or name.endswith((".lock.yaml", ".lock.yml")):
        return False
    return name.endswith((".yaml", ".yml"))


def _manifest_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise ManifestError([Problem(str(path), 0, "-", "no such file or directory")])
    if not path.is_dir():
        return [path]
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise ManifestError([Problem(str(path), 0, "-", f"cannot list: {exc.strerror}")]) from None
    found = [p for p in entries if _is_manifest_name(p.name) and p.is_file()]
    if not found:
        message = "no manifests here: expected *.yaml or *.yml files (*.lock.yaml are lock files)"
        raise ManifestError([Problem(str(path), 0, "-", message)])
    return found


def _declared_models(doc: _Document, manifest: ModelSetManifest) -> tuple[DeclaredModel, ...]:
    return tuple(
        DeclaredModel(
            spec=spec,
            source=f"{doc.file}:{doc.line(('spec', 'models', index))}",
            suspend=spec.suspend or manifest.spec.suspend,
        )
        for index, spec in enumerate(manifest.spec.models)
    )


def _first_set(docs: list[_Document], attribute: str) -> tuple[_Document, Any] | None:
    for doc in docs:
        assert doc.manifest is not None
        value = getattr(doc.manifest.spec, attribute)
        if attribute in doc.manifest.spec.model_fields_set and value is not None:
            return doc, value
    return None


def _merged_path(docs: list[_Document], attribute: str) -> str | None:
    found = _first_set(docs, attribute)
    return None if found is None else _resolve_path(found[1], found[0].base_dir)


def _generation(manifests: list[ModelSetManifest], settings: dict[str, Any]) -> str:
    payload = {
        "manifests": [m.model_dump(mode="json", by_alias=True) for m in manifests],
        "settings": settings,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _build_set(docs: list[_Document]) -> ManifestSet:
    manifests = [d.manifest for d in docs if d.manifest is not None]
    endpoint = _first_set(docs, "endpoint")
    retention = _first_set(docs, "retention")
    downloads = _first_set(docs, "downloads")
    usage = _first_set(docs, "usage")
    controller = _first_set(docs, "controller")
    settings: dict[str, Any] = {
        "cache": _merged_path(docs, "cache"),
        "state": _merged_path(docs, "state"),
        "endpoint": None if endpoint is None else str(endpoint[1]).rstrip("/"),
        "status_file": _merged_path(docs, "status_file"),
        "retention": Retention() if retention is None else retention[1],
        "downloads": Downloads() if downloads is None else downloads[1],
        "usage": Usage() if usage is None else usage[1],
        "controller": Controller() if controller is None else controller[1],
    }
    hashed = {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in settings.items()
    }
    files = tuple(
        ManifestFile(path=d.file, manifest=d.manifest, models=_declared_models(d, d.manifest))
        for d in docs
        if d.manifest is not None
    )
    return ManifestSet(files=files, generation=_generation(manifests, hashed), **settings)


def load_manifests(path: str | Path) -> ManifestSet:
    """Load a manifest file, or every manifest of a directory, and merge them.

    Raises :class:`ManifestError` listing every problem of every file.
    """
    docs = [_read_document(p, str(p)) for p in _manifest_paths(Path(path))]
    for doc in docs:
        if isinstance(doc.data, dict):
            _validate(doc)
    _check_duplicate_names(docs)
    _check_alternatives(docs)
    _check_conflicts(docs)
    order = {doc.file: index for index, doc in enumerate(docs)}
    problems = sorted(
        (p for doc in docs for p in doc.problems), key=lambda p: (order[p.file], p.line)
    )
    if problems:
        raise ManifestError(problems)
    return _build_set(docs)


# --------------------------------------------------------------------------- desired state


def _expand(value: str) -> str:
    # As huggingface_hub does for its own variables, so both find the same cache.
    return os.path.abspath(os.path.expandvars(os.path.expanduser(value)))


def default_cache_dir(env: Mapping[str, str]) -> str:
    """The cache huggingface_hub itself would use under ``env``."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(variable):
            return _expand(env[variable])
    if env.get("HF_HOME"):
        return os.path.join(_expand(env["HF_HOME"]), "hub")
    return os.path.join(_expand(env.get("XDG_CACHE_HOME") or "~/.cache"), "huggingface", "hub")


def default_state_dir(env: Mapping[str, str]) -> str:
    return os.path.join(_expand(env.get("XDG_STATE_HOME") or "~/.local/state"), "modelsync")


def _desired_model(model: DeclaredModel) -> DesiredModel:
    spec = model.spec
    return DesiredModel(
        name=spec.name,
        repo=spec.repo,
        revision=spec.revision,
        include=tuple(spec.include),
        exclude=tuple(spec.exclude),
        priority=spec.priority,
        policy=spec.policy,
        updates=spec.updates,
        suspend=model.suspend,
        source=model.source,
        tags=tuple(spec.tags),
        alternatives=tuple(spec.alternatives),
        adopt=spec.adopt,
        probe=None
        if spec.probe is None
        else Probe(tuple(spec.probe.command), parse_duration(spec.probe.timeout)),
    )


def _retention_policy(retention: Retention) -> RetentionPolicy:
    return RetentionPolicy(
        max_unused_days=retention.max_unused_days,
        max_storage_usage_percent=retention.max_storage_usage_percent,
        min_usage_frequency=retention.min_usage_frequency,
        preserve_recently_downloaded=retention.preserve_recently_downloaded,
        preserve_high_priority=retention.preserve_high_priority,
        mode=RetentionMode(retention.mode),
        old_revision_grace=timedelta(seconds=parse_duration(retention.old_revision_grace)),
    )


def to_desired(manifest_set: ManifestSet, env: Mapping[str, str] | None = None) -> DesiredState:
    """The desired state, with defaults taken from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    state_dir = manifest_set.state or default_state_dir(env)
    endpoint = manifest_set.endpoint or env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return DesiredState(
        models=tuple(_desired_model(m) for m in manifest_set.models),
        cache_dir=manifest_set.cache or default_cache_dir(env),
        state_dir=state_dir,
        endpoint=endpoint.rstrip("/"),
        generation=manifest_set.generation,
        status_file=manifest_set.status_file or os.path.join(state_dir, "status.yaml"),
        usage_window_days=manifest_set.usage.window_days,
        retention=_retention_policy(manifest_set.retention),
    )

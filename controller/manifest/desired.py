"""What a manifest set means: the desired state, with every default filled in.

Defaults the manifests leave open come from the environment, the way huggingface_hub itself
reads it, so that modelsync and the applications it serves find the same cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from controller.domain import DesiredModel, DesiredState, Probe, RetentionMode, RetentionPolicy
from controller.manifest.fields import parse_duration
from controller.manifest.manifest_set import DeclaredModel, ManifestSet
from controller.manifest.schema import Retention

DEFAULT_ENDPOINT = "https://huggingface.co"


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
        quarantine_grace=timedelta(seconds=parse_duration(retention.quarantine_grace)),
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
        min_speed=manifest_set.downloads.min_speed_bytes,
        min_speed_window=manifest_set.downloads.min_speed_seconds,
    )

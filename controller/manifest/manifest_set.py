"""Valid manifests, merged into one set: the models of every file, and the settings of the
directory.

Generation
    :attr:`ManifestSet.generation` hashes the *parsed* documents with defaults filled in, plus the
    resolved spec-level settings.  Comment, whitespace and quoting edits, or spelling out a
    default, leave it unchanged; any change of meaning changes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from controller.manifest.document import Document
from controller.manifest.schema import (
    SHARED_SECTIONS,
    Controller,
    Downloads,
    ModelSetManifest,
    ModelSpec,
    Retention,
    Usage,
)


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


def merge(docs: list[Document]) -> ManifestSet:
    """The set of ``docs``, which have passed every check; each setting from the first that
    sets it (the checks across files made sure the others agree)."""
    files = tuple(
        ManifestFile(path=d.file, manifest=d.manifest, models=_declared_models(d, d.manifest))
        for d in docs
        if d.manifest is not None
    )
    settings = _merged_settings(docs)
    generation = _generation([f.manifest for f in files], settings)
    return ManifestSet(files=files, generation=generation, **settings)


def _declared_models(doc: Document, manifest: ModelSetManifest) -> tuple[DeclaredModel, ...]:
    return tuple(
        DeclaredModel(
            spec=spec,
            source=f"{doc.file}:{doc.line(('spec', 'models', index))}",
            suspend=spec.suspend or manifest.spec.suspend,
        )
        for index, spec in enumerate(manifest.spec.models)
    )


def _merged_settings(docs: list[Document]) -> dict[str, Any]:
    endpoint = _first_set(docs, "endpoint")
    settings: dict[str, Any] = {
        "cache": _merged_path(docs, "cache"),
        "state": _merged_path(docs, "state"),
        "endpoint": None if endpoint is None else str(endpoint[1]).rstrip("/"),
        "status_file": _merged_path(docs, "status_file"),
    }
    for attribute, section in SHARED_SECTIONS.items():
        found = _first_set(docs, attribute)
        settings[attribute] = section() if found is None else found[1]
    return settings


def _first_set(docs: list[Document], attribute: str) -> tuple[Document, Any] | None:
    for doc in docs:
        assert doc.manifest is not None
        value = getattr(doc.manifest.spec, attribute)
        if attribute in doc.manifest.spec.model_fields_set and value is not None:
            return doc, value
    return None


def _merged_path(docs: list[Document], attribute: str) -> str | None:
    found = _first_set(docs, attribute)
    return None if found is None else found[0].resolve_path(found[1])


def _generation(manifests: list[ModelSetManifest], settings: dict[str, Any]) -> str:
    hashed = {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in settings.items()
    }
    payload = {
        "manifests": [m.model_dump(mode="json", by_alias=True) for m in manifests],
        "settings": hashed,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

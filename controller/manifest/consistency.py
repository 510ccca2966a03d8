"""The checks across the manifests of a directory: what no single file can get wrong alone.

Model names are unique across all manifests, alternatives name declared models, and the
spec-level settings -- one per machine -- agree wherever they are set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from controller.manifest.document import Document
from controller.manifest.problems import Loc, show, suggest
from controller.manifest.schema import SHARED_SECTIONS

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


def check_consistency(docs: list[Document]) -> None:
    """Reports, in the documents concerned, every disagreement between them."""
    _check_duplicate_names(docs)
    _check_alternatives(docs)
    _check_conflicts(docs)


def _raw_spec(doc: Document) -> dict[str, Any]:
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    return spec if isinstance(spec, dict) else {}


def _raw_models(doc: Document) -> Iterator[tuple[int, dict[str, Any]]]:
    """Model entries as written -- checked even in a file with other errors, so that one
    mistake does not hide (or fake) duplicate and unknown-name problems elsewhere."""
    models = _raw_spec(doc).get("models")
    if isinstance(models, list):
        for index, entry in enumerate(models):
            if isinstance(entry, dict):
                yield index, entry


def _check_duplicate_names(docs: list[Document]) -> None:
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


def _check_alternatives(docs: list[Document]) -> None:
    names = (entry.get("name") for doc in docs for _, entry in _raw_models(doc))
    declared = sorted({name for name in names if isinstance(name, str)})
    # A file that could not be read at all may declare the missing names: saying they are
    # unknown would send people after the wrong mistake.
    all_read = all(isinstance(doc.data, dict) for doc in docs)
    for doc in docs:
        for index, entry in _raw_models(doc):
            alternatives = entry.get("alternatives")
            if isinstance(alternatives, list):
                _check_model_alternatives(
                    doc, index, entry, alternatives, declared if all_read else None
                )


def _check_model_alternatives(
    doc: Document,
    index: int,
    entry: dict[str, Any],
    alternatives: list[Any],
    declared: list[str] | None,
) -> None:
    """The alternatives of model entry ``index``; ``declared`` is None when it is not known."""
    for position, name in enumerate(alternatives):
        loc: Loc = ("spec", "models", index, "alternatives", position)
        if not isinstance(name, str):
            continue  # reported by the document's own validation
        if name == entry.get("name"):
            doc.report(doc.line(loc), loc, "a model cannot be its own alternative")
        elif declared is not None and name not in declared:
            suggestion = suggest(name, declared)
            hint = f"; did you mean '{suggestion}'?" if suggestion else ""
            doc.report(doc.line(loc), loc, f"no model named {show(name)} is declared{hint}")


def _comparable(key: str, value: Any, doc: Document) -> Any:
    """A setting's meaning, so that spellings of the same value do not count as a conflict."""
    if key in _PATH_SETTINGS and isinstance(value, str):
        return doc.resolve_path(value)
    if key == "endpoint" and isinstance(value, str):
        return value.rstrip("/")
    section = SHARED_SECTIONS.get(key)
    if section is not None:
        try:
            return section.model_validate(value).model_dump()
        except ValidationError:
            return value  # already reported by the document's own validation
    return value


def _check_conflicts(docs: list[Document]) -> None:
    for key in _SHARED_SETTINGS:
        declared = [(d, _raw_spec(d)[key]) for d in docs if _raw_spec(d).get(key) is not None]
        if len(declared) < 2:
            continue
        first_doc, first_value = declared[0]
        expected = _comparable(key, first_value, first_doc)
        first_at = f"{first_doc.file}:{first_doc.line(('spec', key), at_key=True)}"
        for doc, value in declared[1:]:
            if _comparable(key, value, doc) != expected:
                loc: Loc = ("spec", key)
                doc.report(
                    doc.line(loc, at_key=True),
                    loc,
                    f"conflicts with {first_at}; spec.{key} applies to every manifest, "
                    "so set it in one of them (or identically)",
                )

"""Generated bad manifests: random YAML documents, random text, and one-change mutations of a
valid manifest.  Each is either loaded or refused with problems that all say ``file:line:
path: message`` about the file itself; no other exception escapes, and loading writes nothing.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from controller.manifest.loading import load_manifests
from controller.manifest.problems import ManifestError
from tests.support.generated import PROPERTY, documents, scalars

VALID: dict[str, Any] = {
    "apiVersion": "modelsync/v1",
    "kind": "ModelSet",
    "metadata": {"name": "generated"},
    "spec": {
        "cache": "cache",
        "state": "state",
        "retention": {"max_storage_usage_percent": 80},
        "models": [
            {
                "name": "a",
                "repo": "org/a",
                "revision": "main",
                "include": ["*.json", "*.safetensors"],
                "priority": "high",
                "updates": "auto",
            },
            {"name": "b", "repo": "org/b", "policy": "on-demand"},
        ],
    },
}


def outcome_of(text: str) -> None:
    """Load ``text`` as a manifest in a directory of its own, and check how it went."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        path = root / "m.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_manifests(path)
        except ManifestError as e:
            assert e.problems, "a refusal names at least one problem"
            for problem in e.problems:
                rendered = str(problem)
                assert rendered.startswith(f"{path}:{problem.line}: "), rendered
                assert problem.line >= 0 and problem.message.strip(), rendered
        assert sorted(p.name for p in root.iterdir()) == ["m.yaml"]  # loading writes nothing


def test_the_valid_manifest_loads() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "m.yaml"
        path.write_text(yaml.safe_dump(VALID, sort_keys=False))
        loaded = load_manifests(path)
    assert loaded is not None


@PROPERTY
@given(documents())
def test_any_yaml_document_is_loaded_or_refused_with_file_and_line(document: Any) -> None:
    outcome_of(yaml.safe_dump(document, allow_unicode=True))


@PROPERTY
@given(st.text(max_size=300))
def test_any_text_is_loaded_or_refused_with_file_and_line(text: str) -> None:
    outcome_of(text)


def _locations(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document a mutation may touch (the root excluded)."""
    found: list[tuple[Any, ...]] = [at] if at else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _locations(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _locations(value, (*at, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """The valid manifest with one to three changes: a value replaced by any other, a key
    removed, or a key added."""
    document = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = _locations(document)
        if not places:
            break
        place = draw(st.sampled_from(places))
        parent: Any = document
        for step in place[:-1]:
            parent = parent[step]
        last = place[-1]
        change = draw(st.sampled_from(["replace", "remove", "add"]))
        if change == "replace":
            parent[last] = draw(st.one_of(scalars, documents(max_leaves=6)))
        elif change == "remove":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(scalars)
        else:
            parent.append(draw(documents(max_leaves=6)))
    return document


@PROPERTY
@given(mutated())
def test_a_mutated_valid_manifest_is_loaded_or_refused_with_file_and_line(
    document: dict[str, Any],
) -> None:
    outcome_of(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))

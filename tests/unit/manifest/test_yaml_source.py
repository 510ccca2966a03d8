"""Reading YAML: syntax errors, YAML 1.2 booleans, duplicate keys, unsupported tags, merge keys
and alias bombs, each reported at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifest.loading import load_manifests
from tests.unit.manifest.texts import HEAD, assert_reported, manifest, problems_of, write

UNREADABLE = [
    pytest.param("spec: [unclosed\n", 2, "(document)", "invalid YAML", id="yaml-syntax"),
    pytest.param(
        "spec: a: b\n",
        1,
        "(document)",
        "invalid YAML: mapping values are not allowed here",
        id="yaml-syntax-wording",
    ),
    pytest.param("", 1, "(document)", "empty file", id="empty-file"),
    pytest.param("# only a comment\n", 1, "(document)", "empty file", id="comment-only-file"),
    pytest.param("- a\n- b\n", 1, "(document)", "expected a mapping", id="top-level-list"),
    pytest.param(
        HEAD + "      suspend: yes\n",
        9,
        "spec.models[0].suspend",
        "expected true or false, got str",
        id="yaml11-boolean",
    ),
    pytest.param(
        HEAD + "      repo: org/b\n",
        9,
        "spec.models[0].repo",
        "duplicate key 'repo' (first at line 8)",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        HEAD + "      1: x\n",
        9,
        "spec.models[0]",
        "keys must be strings, got int",
        id="non-string-key",
    ),
    pytest.param(
        HEAD + "      include: !secret x\n",
        9,
        "spec.models[0].include",
        "cannot read value",
        id="unknown-yaml-tag",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "fragment"), UNREADABLE)
def test_unreadable_yaml_is_reported_with_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, fragment: str
) -> None:
    assert_reported(tmp_path, text, line, path, fragment)


@pytest.mark.parametrize("word", ["off", "on", "yes", "No", "y"])
def test_yaml_11_booleans_stay_strings(tmp_path: Path, word: str) -> None:
    # Under YAML 1.1 `updates: off` would silently become false.
    loaded = load_manifests(write(tmp_path, "m.yaml", HEAD + f"      description: {word}\n"))
    assert loaded.models[0].spec.description == word


@pytest.mark.parametrize("word", ["true", "True", "TRUE"])
def test_yaml_12_booleans_are_booleans(tmp_path: Path, word: str) -> None:
    loaded = load_manifests(write(tmp_path, "m.yaml", HEAD + f"      suspend: {word}\n"))
    assert loaded.models[0].suspend is True


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    [problem] = problems_of(write(tmp_path, "m.yaml", "\n".join(lines) + "\n"))
    assert "more than" in problem.message


def test_yaml_merge_keys_are_supported(tmp_path: Path) -> None:
    models = (
        "    - &base\n      name: a\n      repo: org/a\n      include: ['*.json']\n"
        "    - <<: *base\n      name: b\n      repo: org/b\n"
    )
    loaded = load_manifests(write(tmp_path, "m.yaml", manifest(models=models)))
    assert [(m.spec.name, m.spec.include) for m in loaded.models] == [
        ("a", ["*.json"]),
        ("b", ["*.json"]),
    ]
    # Each entry keeps its own line, not the line of the mapping it merges.
    assert [m.source.rsplit(":", 1)[1] for m in loaded.models] == ["7", "11"]


def test_an_unreadable_value_is_reported_once(tmp_path: Path) -> None:
    # The reader leaves None where it could not read; the schema must not add "got null".
    file = write(tmp_path, "m.yaml", HEAD + "      include: !secret x\n")
    assert [(p.line, p.path) for p in problems_of(file)] == [(9, "spec.models[0].include")]

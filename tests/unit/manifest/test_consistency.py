"""Checks across the manifests of a directory: unique model names, alternatives that exist,
and spec-level settings that agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifest.loading import load_manifests
from tests.unit.manifest.texts import (
    HEAD,
    assert_reported,
    find,
    manifest,
    model,
    problems_of,
    write,
)

IN_ONE_FILE = [
    pytest.param(
        HEAD + model("a"),
        9,
        "spec.models[1].name",
        "duplicate model name 'a'; already declared at ",
        id="duplicate-model-in-file",
    ),
    pytest.param(
        HEAD + "      alternatives: [a2]\n",
        9,
        "spec.models[0].alternatives[0]",
        "no model named 'a2' is declared",
        id="unknown-alternative",
    ),
    pytest.param(
        HEAD + model("b") + "      alternatives: [a, bb]\n",
        11,
        "spec.models[1].alternatives[1]",
        "did you mean 'b'?",
        id="alternative-did-you-mean",
    ),
    pytest.param(
        HEAD + "      alternatives: [a]\n",
        9,
        "spec.models[0].alternatives[0]",
        "cannot be its own alternative",
        id="self-alternative",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "fragment"), IN_ONE_FILE)
def test_inconsistent_models_are_reported_with_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, fragment: str
) -> None:
    assert_reported(tmp_path, text, line, path, fragment)


def test_duplicate_model_across_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", manifest("one", models=model("x")))
    second = write(tmp_path, "b.yaml", manifest("two", models=model("y") + model("x")))
    first = tmp_path / "a.yaml"
    problem = find(problems_of(tmp_path), f"{second}:9: spec.models[1].name: ", "duplicate")
    assert f"already declared at {first}:7" in problem.message


def test_conflicting_spec_settings_across_files(tmp_path: Path) -> None:
    write(
        tmp_path, "a.yaml", manifest("one", "  cache: /data/hub\n  downloads: {concurrency: 4}\n")
    )
    b = write(tmp_path, "b.yaml", manifest("two", "  cache: /other/hub\n  downloads: {}\n"))
    problems = problems_of(tmp_path)
    find(problems, f"{b}:6: spec.cache: ", f"conflicts with {tmp_path / 'a.yaml'}:6")
    find(problems, f"{b}:7: spec.downloads: ", "conflicts with")


def test_usage_window_is_shared(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", manifest("one", "  usage: {window_days: 7}\n"))
    b = write(tmp_path, "b.yaml", manifest("two", "  usage: {window_days: 30}\n"))
    find(problems_of(tmp_path), f"{b}:6: spec.usage: ", "conflicts with")


def test_equal_settings_in_two_files_do_not_conflict(tmp_path: Path) -> None:
    # Same directory, same meaning: "./hub" and "hub" resolve alike, trailing "/" is ignored,
    # a section spelling out its defaults equals one that leaves them out.
    a_spec = "  cache: hub\n  endpoint: http://h:1/\n  downloads: {}\n"
    b_spec = "  cache: ./hub\n  endpoint: http://h:1\n  downloads: {concurrency: 8}\n"
    write(tmp_path, "a.yaml", manifest("one", a_spec))
    write(tmp_path, "b.yaml", manifest("two", b_spec))
    loaded = load_manifests(tmp_path)
    assert loaded.cache == str(tmp_path / "hub")
    assert loaded.endpoint == "http://h:1"


def test_unreadable_file_does_not_cause_unknown_alternative_reports(tmp_path: Path) -> None:
    # b.yaml may well declare "x"; only its syntax error is worth reporting.
    write(tmp_path, "a.yaml", manifest(models=model("a", extra="      alternatives: [x]\n")))
    b = write(tmp_path, "b.yaml", "spec: [\n")
    assert [(p.file, p.path) for p in problems_of(tmp_path)] == [(str(b), "(document)")]

"""Schema errors in words people can act on: what was expected and what was found, the
allowed values, a did-you-mean for a misspelt key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.manifest.texts import (
    HEAD,
    assert_reported,
    find,
    manifest,
    model,
    problems_of,
    write,
)

MISFITS = [
    pytest.param(
        HEAD.replace("modelsync/v1", "modelsync/v2"),
        1,
        "apiVersion",
        "unsupported apiVersion 'modelsync/v2'; supported: modelsync/v1",
        id="unknown-api-version",
    ),
    pytest.param(
        HEAD.replace("kind: ModelSet", "kind: ModelList"),
        2,
        "kind",
        "unsupported kind 'ModelList'; supported: ModelSet",
        id="unknown-kind",
    ),
    pytest.param(
        HEAD + "      revison: v1\n",
        9,
        "spec.models[0].revison",
        "unknown field 'revison'; did you mean 'revision'?",
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  status_file: s.yaml\n"),
        6,
        "spec.status_file",
        "did you mean 'statusFile'?",
        id="wrong-key-style",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  retention:\n    maxUnusedDays: 7\n"),
        7,
        "spec.retention.maxUnusedDays",
        "did you mean 'max_unused_days'?",
        id="retention-camel-case",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  retention:\n    MAX-UNUSED-DAYS: 7\n"),
        7,
        "spec.retention.MAX-UNUSED-DAYS",
        "did you mean 'max_unused_days'?",
        id="retention-shouted-key",
    ),
    pytest.param(
        HEAD + "      include: '*.json'\n",
        9,
        "spec.models[0].include",
        "expected a list of strings, got str",
        id="list-given-a-string",
    ),
    pytest.param(
        HEAD + "      revision: 2024\n",
        9,
        "spec.models[0].revision",
        "expected a string, got int; quote it",
        id="number-for-string",
    ),
    pytest.param(
        HEAD + "      priority: urgent\n",
        9,
        "spec.models[0].priority",
        "invalid value 'urgent'; expected one of: critical, high, medium, low, auto",
        id="invalid-enum",
    ),
    pytest.param(
        HEAD + "      policy: sometimes\n",
        9,
        "spec.models[0].policy",
        "expected one of: always, on-demand",
        id="invalid-policy",
    ),
    pytest.param(
        HEAD + "      repo: null\n",
        9,
        "spec.models[0].repo",
        "expected a string, got null",
        id="null-repo",
    ),
    pytest.param(
        HEAD + "    - name: b\n",
        9,
        "spec.models[1].repo",
        "missing required field 'repo'",
        id="missing-field",
    ),
    pytest.param(
        HEAD + "    - t2v\n",
        9,
        "spec.models[1]",
        "expected a mapping, got str",
        id="model-not-a-mapping",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  downloads: {concurrency: 0}\n"),
        6,
        "spec.downloads.concurrency",
        "must be at least 1, got 0",
        id="concurrency-range",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  retention:\n    mode: delete\n"),
        7,
        "spec.retention.mode",
        "expected one of: enforce, recommend",
        id="retention-mode",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  retention:\n    max_storage_usage_percent: 120\n"),
        7,
        "spec.retention.max_storage_usage_percent",
        "must be at most 100",
        id="retention-percent-range",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  retention:\n    old_revision_grace: soon\n"),
        7,
        "spec.retention.old_revision_grace",
        "invalid duration 'soon'",
        id="retention-grace-duration",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  usage: {window_days: 0}\n"),
        6,
        "spec.usage.window_days",
        "must be at least 1, got 0",
        id="usage-window-range",
    ),
    pytest.param(
        HEAD.replace("  name: test\n", "  labels: {team: 7}\n"),
        4,
        "metadata.labels.team",
        "expected a string, got int",
        id="label-not-string",
    ),
    pytest.param(
        HEAD.replace("  name: test\n", "  labels: {}\n"),
        3,
        "metadata.name",
        "missing required field 'name'",
        id="missing-metadata-name",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "fragment"), MISFITS)
def test_schema_misfit_is_reported_with_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, fragment: str
) -> None:
    assert_reported(tmp_path, text, line, path, fragment)


def test_every_problem_in_a_file_is_reported(tmp_path: Path) -> None:
    text = (
        HEAD.replace("kind: ModelSet", "kind: Model")
        + "      revison: main\n"  # 9
        + "      priority: urgent\n"  # 10
        + model("b", "org--b")  # 11-12
    )
    file = write(tmp_path, "m.yaml", text)
    problems = problems_of(file)
    assert [(p.line, p.path) for p in problems] == [
        (2, "kind"),
        (9, "spec.models[0].revison"),
        (10, "spec.models[0].priority"),
        (12, "spec.models[1].repo"),
    ]


@pytest.mark.parametrize(
    ("probe", "path", "fragment"),
    [
        ("{command: []}", "spec.models[0].probe.command", "at least 1"),
        ("{command: [python], timeout: soon}", "spec.models[0].probe.timeout", "invalid duration"),
        ("{cmd: [python]}", "spec.models[0].probe.cmd", "did you mean 'command'"),
    ],
)
def test_invalid_probes_are_reported(tmp_path: Path, probe: str, path: str, fragment: str) -> None:
    file = write(tmp_path, "m.yaml", manifest(models=model("m", extra=f"      probe: {probe}\n")))
    find(problems_of(file), f"{file}:", fragment)
    assert any(p.path == path for p in problems_of(file))

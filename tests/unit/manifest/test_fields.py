"""Checks of single values: names, repo ids, revisions, patterns, endpoints, rates and
durations, each refused with a message that says what is allowed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from controller.manifest.fields import parse_bandwidth, parse_duration
from controller.manifest.loading import load_manifests
from controller.manifest.problems import ManifestError
from tests.unit.manifest.texts import HEAD, assert_reported, write

INVALID_VALUES = [
    pytest.param(
        HEAD.replace("repo: org/a", "repo: org/a/b"),
        8,
        "spec.models[0].repo",
        "at most one '/'",
        id="repo-two-slashes",
    ),
    pytest.param(
        HEAD.replace("repo: org/a", "repo: org/../a"),
        8,
        "spec.models[0].repo",
        "invalid repo id 'org/../a'",
        id="repo-dotdot",
    ),
    pytest.param(
        HEAD.replace("repo: org/a", "repo: /srv/models/a"),
        8,
        "spec.models[0].repo",
        "not a path",
        id="repo-absolute-path",
    ),
    pytest.param(
        HEAD.replace("repo: org/a", "repo: org--x/a"),
        8,
        "spec.models[0].repo",
        "'--' and '..' are not allowed",
        id="repo-double-dash",
    ),
    pytest.param(
        HEAD.replace("name: a", "name: -a b"),
        7,
        "spec.models[0].name",
        "invalid name '-a b'",
        id="invalid-model-name",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  endpoint: ftp://hub.example\n"),
        6,
        "spec.endpoint",
        "expected an http(s) URL",
        id="endpoint-scheme",
    ),
    pytest.param(
        HEAD + "      revision: ../../etc\n",
        9,
        "spec.models[0].revision",
        "'..'",
        id="revision-dotdot",
    ),
    pytest.param(
        HEAD + "      revision: 'v1 final'\n",
        9,
        "spec.models[0].revision",
        "no whitespace",
        id="revision-whitespace",
    ),
    pytest.param(
        HEAD + "      include:\n        - '*.json'\n        - /etc/*\n",
        11,
        "spec.models[0].include[1]",
        "is absolute",
        id="include-absolute",
    ),
    pytest.param(
        HEAD + "      exclude: ['x/../../y']\n",
        9,
        "spec.models[0].exclude[0]",
        "'..' segment",
        id="exclude-dotdot",
    ),
    pytest.param(
        HEAD + "      include: ['']\n",
        9,
        "spec.models[0].include[0]",
        "must not be empty",
        id="include-empty-string",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  downloads:\n    max_bandwidth: fast\n"),
        7,
        "spec.downloads.max_bandwidth",
        "expected a rate like '50MB/s'",
        id="bandwidth-format",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "fragment"), INVALID_VALUES)
def test_invalid_value_is_reported_with_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, fragment: str
) -> None:
    assert_reported(tmp_path, text, line, path, fragment)


@pytest.mark.parametrize(
    "repo",
    [
        "org/name",
        "gpt2",
        "Wan-AI/Wan2.2-T2V-A14B",
        "a_b/c.d",
        "org/a..b",
        "org/x--y",
        "org/-x",
        "org/x.",
        "a/b/c",
        "org/x.git",
        "org/",
        "/abs",
        "org/na me",
        "x" * 97,
    ],
)
def test_repo_ids_follow_huggingface_hub(tmp_path: Path, repo: str) -> None:
    try:
        validate_repo_id(repo)
        hub_accepts = True
    except HFValidationError:
        hub_accepts = False
    text = HEAD.replace("repo: org/a", f"repo: '{repo}'")
    try:
        load_manifests(write(tmp_path, "m.yaml", text))
        we_accept = True
    except ManifestError:
        we_accept = False
    assert we_accept == hub_accepts


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("30s", 30), ("5m", 300), ("1.5h", 5400), ("1d", 86400), ("250ms", 0.25), (" 2 s ", 2)],
)
def test_durations(duration: str, seconds: float) -> None:
    assert parse_duration(duration) == seconds


@pytest.mark.parametrize(
    ("rate", "per_second"),
    [("50MB/s", 50_000_000), ("2MiB/s", 2 * 1024**2), ("1.5 kB/s", 1500), ("8B/s", 8)],
)
def test_bandwidths(rate: str, per_second: int) -> None:
    assert parse_bandwidth(rate) == per_second


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_duration, "soon", "invalid duration 'soon': expected a number and a unit"),
        (parse_duration, "0s", "invalid duration '0s': must be more than 0"),
        (parse_duration, "5 weeks", "(units: ms, s, m, h, d)"),
        (parse_bandwidth, "fast", "invalid bandwidth 'fast': expected a rate like '50MB/s'"),
        (parse_bandwidth, "0MB/s", "invalid bandwidth '0MB/s': must be more than 0"),
        (parse_bandwidth, "5Mb/s", "(units: B, kB, KB, MB, GB, KiB, MiB, GiB)"),
    ],
)
def test_unreadable_quantities_say_what_is_expected(
    parse: Callable[[str], float], text: str, message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse(text)
    assert message in str(caught.value)

"""Manifest loading: every mistake reported as ``file:line: path: message``, and what a valid
manifest means once defaults are applied."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from controller.domain import Policy, Priority, UpdatePolicy
from controller.manifest.loader import (
    TOKEN_MESSAGE,
    ManifestError,
    Problem,
    load_manifests,
    manifest_json_schema,
    to_desired,
)
from reconcilers.retention import OLD_REVISION_GRACE

REPO_ROOT = Path(__file__).resolve().parents[3]

# Line numbers below count from here: line 7 is the model entry, line 8 its repo, and cases
# append their own lines from line 9 on.
HEAD = """\
apiVersion: modelsync/v1
kind: ModelSet
metadata:
  name: test
spec:
  models:
    - name: a
      repo: org/a
"""


def model(name: str, repo: str | None = None, extra: str = "") -> str:
    """A model entry (two lines, plus ``extra``) to append under ``spec.models``."""
    return f"    - name: {name}\n      repo: {repo or 'org/' + name}\n{extra}"


def manifest(name: str = "test", spec: str = "", models: str = "") -> str:
    body = f"{spec}  models:\n{models}" if models else spec
    return f"apiVersion: modelsync/v1\nkind: ModelSet\nmetadata:\n  name: {name}\nspec:\n{body}"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_manifests(path)
    return caught.value.problems


def find(problems: list[Problem], prefix: str, fragment: str) -> Problem:
    for problem in problems:
        if str(problem).startswith(prefix) and fragment in problem.message:
            return problem
    listing = "\n".join(str(p) for p in problems)
    raise AssertionError(f"no problem {prefix!r} ... {fragment!r} among:\n{listing}")


# --------------------------------------------------------------------------- invalid manifests

INVALID = [
    pytest.param("spec: [unclosed\n", 2, "(document)", "invalid YAML", id="yaml-syntax"),
    pytest.param("", 1, "(document)", "empty file", id="empty-file"),
    pytest.param("# only a comment\n", 1, "(document)", "empty file", id="comment-only-file"),
    pytest.param("- a\n- b\n", 1, "(document)", "expected a mapping", id="top-level-list"),
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
        HEAD + "      suspend: yes\n",
        9,
        "spec.models[0].suspend",
        "expected true or false, got str",
        id="yaml11-boolean",
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
        HEAD + model("a"),
        9,
        "spec.models[1].name",
        "duplicate model name 'a'; already declared at ",
        id="duplicate-model-in-file",
    ),
    pytest.param(
        HEAD + "      repo: org/b\n",
        9,
        "spec.models[0].repo",
        "duplicate key 'repo' (first at line 8)",
        id="duplicate-yaml-key",
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
    pytest.param(
        HEAD + "      token: hf_secret\n",
        9,
        "spec.models[0].token",
        TOKEN_MESSAGE,
        id="token-key",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  HF_TOKEN: x\n"),
        6,
        "spec.HF_TOKEN",
        TOKEN_MESSAGE,
        id="hf-token-key",
    ),
    pytest.param(
        HEAD + "      description: hf_" + "a1B2" * 9 + "\n",
        9,
        "spec.models[0].description",
        "looks like a Hugging Face token",
        id="token-value",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  endpoint: https://user:pw@hub.example\n"),
        6,
        "spec.endpoint",
        TOKEN_MESSAGE,
        id="credentials-in-endpoint",
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
        HEAD.replace("spec:\n", "spec:\n  downloads:\n    max_bandwidth: fast\n"),
        7,
        "spec.downloads.max_bandwidth",
        "expected a rate like '50MB/s'",
        id="bandwidth-format",
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
        HEAD.replace("spec:\n", "spec:\n  retention:\n    maxUnusedDays: 7\n"),
        7,
        "spec.retention.maxUnusedDays",
        "did you mean 'max_unused_days'?",
        id="retention-camel-case",
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


@pytest.mark.parametrize(("text", "line", "path", "fragment"), INVALID)
def test_invalid_manifest_is_reported_with_file_line_and_path(
    tmp_path: Path, text: str, line: int, path: str, fragment: str
) -> None:
    file = write(tmp_path, "m.yaml", text)
    problem = find(problems_of(file), f"{file}:{line}: {path}: ", fragment)
    assert str(problem) == f"{problem.file}:{problem.line}: {problem.path}: {problem.message}"


def test_problem_string_format() -> None:
    problem = Problem("a.yaml", 3, "spec.models[1].repo", "bad")
    assert str(problem) == "a.yaml:3: spec.models[1].repo: bad"


def test_no_message_repeats_a_secret(tmp_path: Path) -> None:
    secret = "hf_" + "Zq9" * 12
    text = HEAD + f"      token: {secret}\n      priority: {secret}\n"
    file = write(tmp_path, "m.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load_manifests(file)
    assert secret not in str(caught.value)


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


def test_problems_in_every_file_are_reported_in_file_order(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEAD + "      priority: urgent\n")
    write(tmp_path, "b.yaml", HEAD.replace("name: a", "name: b") + "      revison: main\n")
    write(tmp_path, "c.yaml", "spec: [\n")
    problems = problems_of(tmp_path)
    assert [(Path(p.file).name, p.line) for p in problems] == [
        ("a.yaml", 9),
        ("b.yaml", 9),
        ("c.yaml", 2),
    ]


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


def test_equal_settings_in_two_files_do_not_conflict(tmp_path: Path) -> None:
    # Same directory, same meaning: "./hub" and "hub" resolve alike, trailing "/" is ignored.
    write(tmp_path, "a.yaml", manifest("one", "  cache: hub\n  endpoint: http://h:1/\n"))
    write(tmp_path, "b.yaml", manifest("two", "  cache: ./hub\n  endpoint: http://h:1\n"))
    loaded = load_manifests(tmp_path)
    assert loaded.cache == str(tmp_path / "hub")
    assert loaded.endpoint == "http://h:1"


def test_unreadable_file_does_not_cause_unknown_alternative_reports(tmp_path: Path) -> None:
    # b.yaml may well declare "x"; only its syntax error is worth reporting.
    write(tmp_path, "a.yaml", manifest(models=model("a", extra="      alternatives: [x]\n")))
    b = write(tmp_path, "b.yaml", "spec: [\n")
    assert [(p.file, p.path) for p in problems_of(tmp_path)] == [(str(b), "(document)")]


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    [problem] = problems_of(write(tmp_path, "m.yaml", "\n".join(lines) + "\n"))
    assert "more than" in problem.message


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert [str(p) for p in problems_of(missing)] == [f"{missing}:0: -: no such file or directory"]


def test_directory_without_manifests(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "not a manifest")
    write(tmp_path, "wan.lock.yaml", "lock: {}\n")
    [problem] = problems_of(tmp_path)
    assert (problem.file, problem.line, problem.path) == (str(tmp_path), 0, "-")
    assert "no manifests" in problem.message


# --------------------------------------------------------------------------- valid manifests


def test_directory_loads_and_merges(tmp_path: Path) -> None:
    write(
        tmp_path,
        "10-settings.yaml",
        manifest(
            "settings",
            "  retention:\n    mode: recommend\n  downloads:\n    max_bandwidth: 2MiB/s\n",
        ),
    )
    write(
        tmp_path,
        "20-video.yml",
        manifest("video", models=model("v", extra="      alternatives: [w]\n")),
    )
    write(tmp_path, "30-more.yaml", manifest("more", "  suspend: true\n", models=model("w")))
    loaded = load_manifests(tmp_path)
    assert [Path(f.path).name for f in loaded.files] == [
        "10-settings.yaml",
        "20-video.yml",
        "30-more.yaml",
    ]
    assert [m.spec.name for m in loaded.models] == ["v", "w"]
    assert [m.suspend for m in loaded.models] == [False, True]
    assert loaded.models[0].spec.alternatives == ["w"]
    assert loaded.retention.mode == "recommend"
    assert loaded.retention.max_unused_days == 30
    assert loaded.downloads.concurrency == 8
    assert loaded.downloads.max_bandwidth_bytes == 2 * 1024 * 1024


def test_lock_files_and_hidden_files_are_not_manifests(tmp_path: Path) -> None:
    write(tmp_path, "wan.yaml", manifest(models=model("a")))
    write(tmp_path, "wan.lock.yaml", "this: [is not a manifest\n")
    write(tmp_path, ".#wan.yaml", "neither: [is this\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "deep.yaml", "not: [read\n")  # non-recursive
    assert [m.spec.name for m in load_manifests(tmp_path).models] == ["a"]


def test_defaults_and_enums(tmp_path: Path) -> None:
    # `updates: off` must stay the word "off" (YAML 1.1 would make it false).
    text = HEAD + "      updates: off\n      policy: on-demand\n      priority: high\n"
    desired = to_desired(load_manifests(write(tmp_path, "m.yaml", text)), env={})
    [m] = desired.models
    assert (m.updates, m.policy, m.priority) == (UpdatePolicy.OFF, Policy.ON_DEMAND, Priority.HIGH)
    assert (m.revision, m.include, m.exclude, m.suspend) == ("main", (), (), False)
    assert m.source == f"{tmp_path / 'm.yaml'}:7"


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


def test_relative_paths_resolve_against_the_manifest_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "conf"
    directory.mkdir()
    spec = "  cache: ../models/hub\n  state: state\n  statusFile: ~/status.yaml\n"
    file = write(directory, "m.yaml", manifest(spec=spec, models=model("a")))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir("/")  # the working directory must not matter
    desired = to_desired(load_manifests(file), env={})
    assert desired.cache_dir == str(tmp_path / "models" / "hub")
    assert desired.state_dir == str(directory / "state")
    assert desired.status_file == str(tmp_path / "home" / "status.yaml")


def test_defaults_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_manifests(write(tmp_path, "m.yaml", HEAD))
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home"

    desired = to_desired(loaded)
    assert desired.cache_dir == str(home / ".cache" / "huggingface" / "hub")
    assert desired.state_dir == str(home / ".local" / "state" / "modelsync")
    assert desired.status_file == str(home / ".local" / "state" / "modelsync" / "status.yaml")
    assert desired.endpoint == "https://huggingface.co"
    assert desired.generation == loaded.generation

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local:8080/")
    desired = to_desired(loaded)
    assert desired.cache_dir == str(tmp_path / "hf" / "hub")
    assert desired.state_dir == str(tmp_path / "xdg-state" / "modelsync")
    assert desired.endpoint == "http://mirror.local:8080"

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert to_desired(loaded).cache_dir == str(tmp_path / "cache")


def test_manifest_settings_win_over_the_environment(tmp_path: Path) -> None:
    spec = "  cache: /srv/hub\n  state: /srv/state\n  endpoint: https://mirror.example/\n"
    loaded = load_manifests(write(tmp_path, "m.yaml", manifest(spec=spec, models=model("a"))))
    env = {"HF_HUB_CACHE": "/env/hub", "HF_ENDPOINT": "https://env.example", "XDG_STATE_HOME": "/x"}
    desired = to_desired(loaded, env=env)
    assert (desired.cache_dir, desired.state_dir, desired.endpoint) == (
        "/srv/hub",
        "/srv/state",
        "https://mirror.example",
    )
    assert desired.status_file == "/srv/state/status.yaml"


def test_generation_ignores_comments_and_tracks_meaning(tmp_path: Path) -> None:
    file = write(tmp_path, "m.yaml", HEAD)
    original = load_manifests(file).generation
    write(
        tmp_path, "m.yaml", "# a comment\n" + HEAD.replace("repo: org/a", "repo: 'org/a'  # quoted")
    )
    assert load_manifests(file).generation == original
    write(tmp_path, "m.yaml", HEAD + "      revision: main\n")  # spelling out the default
    assert load_manifests(file).generation == original
    write(tmp_path, "m.yaml", HEAD + "      revision: v2\n")
    assert load_manifests(file).generation != original


def test_shipped_manifest_is_valid() -> None:
    loaded = load_manifests(REPO_ROOT / "manifests" / "wan2.2.yaml")
    desired = {m.name: m for m in to_desired(loaded, env={}).models}
    assert set(desired) == {"t2v-A14B", "i2v-A14B", "ti2v-5B"}
    assert desired["t2v-A14B"].repo == "Wan-AI/Wan2.2-T2V-A14B"
    assert desired["i2v-A14B"].repo == "Wan-AI/Wan2.2-I2V-A14B"
    assert desired["ti2v-5B"].repo == "Wan-AI/Wan2.2-TI2V-5B"
    assert desired["t2v-A14B"].priority is Priority.CRITICAL
    assert desired["ti2v-5B"].policy is Policy.ON_DEMAND
    assert all("*.safetensors" in m.include for m in desired.values())
    assert loaded.retention.max_unused_days == 30
    assert loaded.retention.max_storage_usage_percent == 80
    assert loaded.retention.min_usage_frequency == 0.1


def test_json_schema_describes_the_manifest() -> None:
    schema = json.loads(json.dumps(manifest_json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    model_props = schema["$defs"]["ModelSpec"]["properties"]
    assert {
        "name",
        "repo",
        "revision",
        "include",
        "exclude",
        "priority",
        "policy",
        "updates",
    } <= set(model_props)
    assert all(prop.get("description") for prop in model_props.values())
    assert schema["$defs"]["ModelSpec"]["additionalProperties"] is False
    assert "statusFile" in schema["$defs"]["Spec"]["properties"]


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


def test_usage_window_tags_and_alternatives_reach_the_desired_state(tmp_path: Path) -> None:
    spec = "  usage: {window_days: 14}\n"
    models = model("a", extra="      tags: [video, hd]\n      alternatives: [b]\n") + model("b")
    desired = to_desired(load_manifests(write(tmp_path, "m.yaml", manifest("u", spec, models))))
    assert desired.usage_window_days == 14
    a, b = desired.models
    assert (a.tags, a.alternatives, b.tags, b.alternatives) == (("video", "hd"), ("b",), (), ())
    default = to_desired(load_manifests(write(tmp_path, "d.yaml", manifest("d", "", model("a")))))
    assert default.usage_window_days == 30


def test_usage_window_is_checked_and_shared(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    bad = write(tmp_path / "bad", "m.yaml", manifest("u", "  usage: {window_days: 0}\n"))
    find(problems_of(bad), f"{bad}:6: spec.usage.window_days: ", "must be at least 1, got 0")
    write(tmp_path, "a.yaml", manifest("one", "  usage: {window_days: 7}\n"))
    b = write(tmp_path, "b.yaml", manifest("two", "  usage: {window_days: 30}\n"))
    find(problems_of(tmp_path), f"{b}:6: spec.usage: ", "conflicts with")


def test_a_probe_is_parsed_with_its_timeout(tmp_path: Path) -> None:
    extra = "      probe: {command: [python, -c, 'import torch'], timeout: 90s}\n"
    file = write(tmp_path, "m.yaml", manifest(models=model("m", extra=extra)))
    (declared,) = to_desired(load_manifests(file)).models
    assert declared.probe is not None
    assert declared.probe.command == ("python", "-c", "import torch")
    assert declared.probe.timeout_s == 90


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


def test_old_revision_grace_is_a_retention_duration(tmp_path: Path) -> None:
    default = to_desired(load_manifests(write(tmp_path, "m.yaml", manifest(models=model("a")))))
    assert default.retention.old_revision_grace == OLD_REVISION_GRACE == timedelta(minutes=10)
    spec = "  retention:\n    old_revision_grace: 1h\n"
    path = write(tmp_path, "m.yaml", manifest(spec=spec, models=model("a")))
    assert to_desired(load_manifests(path)).retention.old_revision_grace == timedelta(hours=1)
    write(tmp_path, "m.yaml", manifest(spec="  retention:\n    old_revision_grace: soon\n"))
    problem = find(problems_of(path), f"{path}:", "invalid duration")
    assert problem.path == "spec.retention.old_revision_grace"

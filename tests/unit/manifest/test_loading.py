"""Loading a file or a directory: which files are manifests, every problem of every file in
file and line order, the merged set, and its generation."""

from __future__ import annotations

from pathlib import Path

from controller.manifest.loading import load_manifests
from controller.manifest.problems import Problem
from tests.unit.manifest.texts import HEAD, manifest, model, problems_of, write


def test_problem_string_format() -> None:
    problem = Problem("a.yaml", 3, "spec.models[1].repo", "bad")
    assert str(problem) == "a.yaml:3: spec.models[1].repo: bad"


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


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert [str(p) for p in problems_of(missing)] == [f"{missing}:0: -: no such file or directory"]


def test_directory_without_manifests(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "not a manifest")
    write(tmp_path, "wan.lock.yaml", "lock: {}\n")
    [problem] = problems_of(tmp_path)
    assert (problem.file, problem.line, problem.path) == (str(tmp_path), 0, "-")
    assert "no manifests" in problem.message


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

"""A lock file's problems, word for word and line for line; freshness, lock steps and lock
checks compared whole, so that every part of what they say is pinned."""

from __future__ import annotations

import pytest

from controller.domain import DesiredModel, RemoteFile, RemoteRevision
from controller.manifest.lockfile import (
    Freshness,
    LockedFile,
    LockedModel,
    LockFile,
    LockFileError,
    LockStep,
    Resolve,
    check_locks,
    freshness,
    lock_path_for,
    lock_steps,
    parse,
    remote_from_entry,
    render,
)
from tests.support.factories import C1

HEAD = "apiVersion: modelsync/v1\nkind: ModelSetLock\n"
BLOB = "c" * 40
SHA = "a" * 64


def entry(files: str, *, commit: str = C1, include: str = "[]") -> str:
    """A model ``m`` whose ``files:`` list is ``files`` (block lines, each starting "- ")."""
    return (
        "models:\n"
        "  m:\n"
        "    repo: org/m\n"
        "    revision: main\n"
        f"    include: {include}\n"
        "    exclude: []\n"
        f"    commit: '{commit}'\n" + _files(files)
    )


def _files(lines: str) -> str:
    if not lines:
        return "    files: []\n"
    return "    files:\n" + "".join(f"    {line}\n" for line in lines.splitlines())


def problems(text: str) -> list[str]:
    with pytest.raises(LockFileError) as caught:
        parse(text, "m.lock.yaml")
    assert caught.value.source == "m.lock.yaml"
    assert str(caught.value).splitlines() == [f"m.lock.yaml:{p}" for p in caught.value.problems]
    return caught.value.problems


# Lines of entry(): models 3, m 4, ..., commit 9, files 10, first item 11.
DAMAGED: dict[str, tuple[str, list[str]]] = {
    "not a mapping": ("- 1\n", ["1: expected a ModelSetLock document (a mapping)"]),
    "files not a list": (
        HEAD + entry("").replace("files: []", "files: 5"),
        ["10: models.m.files: expected a list"],
    ),
    "an item not a mapping": (
        HEAD + entry(f"- {{path: a.json, size: 1, blob_id: '{BLOB}'}}\n- 5"),
        ["12: models.m.files[1]: expected a mapping with path, size and sha256 or blob_id"],
    ),
    "an item without a path": (
        HEAD + entry(f"- size: 1\n  blob_id: '{BLOB}'"),
        ["11: models.m.files[0].path: expected a non-empty string, got None"],
    ),
    "unknown fields in an item": (
        HEAD + entry(f"- {{path: a.json, size: 1, blob_id: '{BLOB}', zz: 1, mode: x}}"),
        ["11: models.m.files[0]: unknown field(s): mode, zz"],
    ),
    "a path listed twice, after a bad item": (
        HEAD
        + entry(
            f"- {{path: a.json, size: -1, blob_id: '{BLOB}'}}\n"
            f"- {{path: b.json, size: 1, blob_id: '{BLOB}'}}\n"
            f"- {{path: b.json, size: 2, sha256: '{SHA}'}}"
        ),
        [
            "11: models.m.files[0].size: expected a number of bytes, got -1",
            "13: models.m.files[2].path: 'b.json' is listed twice",
        ],
    ),
    "an empty commit": (
        HEAD + entry("", commit=""),
        [
            "9: models.m.commit: expected a non-empty string, got ''",
            "9: models.m.commit: expected a 40-hex commit id, got ''",
        ],
    ),
    "apiVersion wrong below another field that sorts before it": (
        "kind: ModelSetLock\napiVersion: v0\nmodels: &all {m: *all}\n",
        [
            "2: apiVersion: expected 'modelsync/v1', got 'v0'",
            "3: models.m: unknown field(s): m",
            "3: models.m: missing field(s): repo, revision, include, exclude, commit, files",
        ],
    ),
    "an empty file": ("", ["1: expected a ModelSetLock document (a mapping)"]),
    "another kind, unknown fields quoted when they hold quotes": (
        "apiVersion: modelsync/v1\nkind: Other\nzz: 1\n\"a'b\": 2\n'a\"b': 3\n",
        [
            "1: unknown field(s): \"a'b\", 'a\"b', zz",
            "2: kind: expected 'ModelSetLock', got 'Other'",
        ],
    ),
    "models not a mapping": (
        HEAD + "models: [m]\n",
        ["3: models: expected a mapping of model name to entry"],
    ),
    "a model name that is not a string, then a bad entry": (
        HEAD + "models:\n  1: {}\n  m: 5\n",
        ["3: models: model names must be strings, got 1", "5: models.m: expected a mapping"],
    ),
    "every field of an entry wrong": (
        HEAD
        + entry("", include="x")
        .replace("repo: org/m", "repo: ''")
        .replace("revision: main", "revision: 5")
        .replace("exclude: []", "exclude: [1]\n    zz: 1\n    aa: 2"),
        [
            "4: models.m: unknown field(s): aa, zz",
            "5: models.m.repo: expected a non-empty string, got ''",
            "6: models.m.revision: expected a non-empty string, got 5",
            "7: models.m.include: expected a list of patterns, got 'x'",
            "8: models.m.exclude: expected a list of patterns, got [1]",
        ],
    ),
    "an empty pattern": (
        HEAD + entry("", include="['*.json', '']"),
        ["7: models.m.include: expected a list of patterns, got ['*.json', '']"],
    ),
    "a blob id that is not one": (
        HEAD + entry("- {path: a.json, size: 1, blob_id: 'c0ffee'}"),
        ["11: models.m.files[0].blob_id: expected 40 lowercase hex digits, got 'c0ffee'"],
    ),
    "apiVersion missing, a field named like its first letter": (
        "kind: ModelSetLock\nmodels: {}\na: 1\n",
        ["1: unknown field(s): a", "1: apiVersion: expected 'modelsync/v1', got None"],
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_each_problem_is_said_once_at_its_line(case: str) -> None:
    text, said = DAMAGED[case]
    assert problems(text) == said


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "\\evil", "a/../../x", "a\\..\\..\\x", "a//b", "C:/x", "c:x", "a/"],
)
def test_a_path_that_could_leave_the_snapshot_is_refused(path: str) -> None:
    text = HEAD + entry(f"- {{path: '{path}', size: 1, blob_id: '{BLOB}'}}")
    assert problems(text) == [f"11: models.m.files[0].path: unsafe file name {path!r}"]


def test_an_empty_file_is_locked_with_size_zero() -> None:
    text = HEAD + entry(f"- {{path: __init__.py, size: 0, blob_id: '{BLOB}'}}")
    (m,) = parse(text, "m.lock.yaml").models.values()
    assert m.files == (LockedFile("__init__.py", 0, blob_id=BLOB),)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "models: {\n  tiny: [\n",
            "3: not valid YAML (expected the node content, but found '<stream end>')",
        ),
        (
            "\n\n\nkind: \x00\n",
            "4: not valid YAML (unacceptable character #x0000: special characters are not "
            'allowed in "<unicode string>", position 9)',
        ),
    ],
)
def test_a_lock_that_is_not_yaml_says_why_in_one_line(text: str, said: str) -> None:
    assert problems(text) == [said]


def test_render_keeps_each_file_on_one_line_as_written() -> None:
    """No wrapping however long the path, and no escapes for a path that is not ASCII."""
    path = "modèles/" + "très-long-" * 12 + "poids.safetensors"
    entry_ = LockedModel("org/m", "main", (), (), C1, (LockedFile(path, 5, sha256=SHA),))
    text = render(LockFile({"m": entry_}), "m.yaml")
    assert f"    - {{path: {path}, size: 5, sha256: {SHA}}}\n" in text
    assert parse(text, "m.lock.yaml") == LockFile({"m": entry_})


@pytest.mark.parametrize("path", ["a.json", "dir/a:b.json", ".gitattributes", "a..b/c"])
def test_a_path_inside_the_snapshot_is_accepted(path: str) -> None:
    text = HEAD + entry(f"- {{path: '{path}', size: 1, blob_id: '{BLOB}'}}")
    (m,) = parse(text, "m.lock.yaml").models.values()
    assert m.files == (LockedFile(path, 1, blob_id=BLOB),)


@pytest.mark.parametrize(
    ("manifest", "lock"),
    [
        ("m/a.yaml", "m/a.lock.yaml"),
        ("m/a.yml", "m/a.lock.yml"),
        ("m/a", "m/a.lock.yaml"),
        ("m/a.json", "m/a.json.lock.yaml"),
    ],
)
def test_the_lock_path_of_a_manifest(manifest: str, lock: str) -> None:
    assert lock_path_for(manifest) == lock


# --------------------------------------------------------------------------- values


def model(name: str = "m", **fields: object) -> DesiredModel:
    given: dict[str, object] = {"repo": "org/m", "include": ("*.json",), **fields}
    return DesiredModel(name=name, **given)  # type: ignore[arg-type]


def locked(**fields: object) -> LockedModel:
    given: dict[str, object] = {
        "repo": "org/m",
        "revision": "main",
        "include": ("*.json",),
        "exclude": (),
        "commit": C1,
        "files": (LockedFile("a.json", 3, blob_id=BLOB), LockedFile("b.json", 4, sha256=SHA)),
        **fields,
    }
    return LockedModel(**given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wanted", "entry_", "state"),
    [
        (model(), locked(), Freshness(True)),
        (model(), None, Freshness(False, "not in the lock")),
        (
            model(repo="org/x"),
            locked(),
            Freshness(False, "repo is 'org/x' in the manifest, 'org/m' in the lock"),
        ),
        (
            model(revision="v2"),
            locked(),
            Freshness(False, "revision is 'v2' in the manifest, 'main' in the lock"),
        ),
        (
            model(include=("*.bin",), exclude=("x",)),
            locked(),
            Freshness(
                False,
                "include is ['*.bin'] in the manifest, ['*.json'] in the lock; "
                "exclude is ['x'] in the manifest, [] in the lock",
                commit_kept=True,
            ),
        ),
    ],
)
def test_freshness_says_exactly_what_differs(
    wanted: DesiredModel, entry_: LockedModel | None, state: Freshness
) -> None:
    assert freshness(wanted, entry_) == state


def test_the_remote_side_of_a_lock_entry_is_the_locked_commit_and_hashes() -> None:
    assert remote_from_entry(locked()) == RemoteRevision(
        repo="org/m",
        revision="main",
        commit=C1,
        files=(RemoteFile("a.json", 3, BLOB), RemoteFile("b.json", 4, "", sha256=SHA)),
        locked=True,
    )


def test_lock_steps_say_why_and_carry_the_existing_entry() -> None:
    fresh, patterns, moved, new = (
        model("fresh"),
        model("patterns", include=("*.bin",)),
        model("moved", revision="v2"),
        model("new"),
    )
    existing = {name: locked() for name in ("fresh", "patterns", "moved")}

    steps = lock_steps((fresh, patterns, moved, new), existing, None)

    assert steps == (
        LockStep(fresh, Resolve.KEEP, "kept", existing["fresh"]),
        LockStep(
            patterns,
            Resolve.AT_COMMIT,
            "include is ['*.bin'] in the manifest, ['*.json'] in the lock",
            existing["patterns"],
        ),
        LockStep(
            moved,
            Resolve.AT_REVISION,
            "revision is 'v2' in the manifest, 'main' in the lock",
            existing["moved"],
        ),
        LockStep(new, Resolve.AT_REVISION, "not in the lock", None),
    )
    assert lock_steps((fresh,), existing, frozenset({"fresh"})) == (
        LockStep(fresh, Resolve.AT_REVISION, "upgrade", existing["fresh"]),
    )


def test_check_locks_goes_on_past_a_manifest_without_a_lock() -> None:
    result = check_locks(
        [("m/none.yaml", (model("a"),)), ("m/one.yaml", (model("b"), model("c")))],
        {"m/none.yaml": None, "m/one.yaml": LockFile({"b": locked()})},
    )

    assert result.unlocked == ("m/none.yaml: no lock file (m/none.lock.yaml)",)
    assert result.mismatches == ("c: not in m/one.lock.yaml",)
    assert result.pinned == {"b": remote_from_entry(locked())}
    assert not result.in_sync

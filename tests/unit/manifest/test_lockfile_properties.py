"""Generated lock files: any text or document is either a lock or refused with problems that
name the file; a valid lock survives render and parse unchanged and renders to the same
bytes every time; every accepted file path stays inside its snapshot."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from controller.manifest.lockfile import (
    LOCK_KIND,
    LockedFile,
    LockedModel,
    LockFile,
    LockFileError,
    parse,
    render,
)
from tests.support.generated import PROPERTY, documents, scalars, tricky_text

SOURCE = "models.lock.yaml"
hex40 = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,12}", fullmatch=True)
file_paths = st.lists(segment, min_size=1, max_size=3).map("/".join)


@st.composite
def locked_files(draw: st.DrawFn) -> tuple[LockedFile, ...]:
    paths = draw(st.lists(file_paths, max_size=5, unique=True))
    files = []
    for path in sorted(paths):
        size = draw(st.integers(min_value=0, max_value=2**50))
        if draw(st.booleans()):
            files.append(LockedFile(path, size, sha256=draw(hex64)))
        else:
            files.append(LockedFile(path, size, blob_id=draw(hex40)))
    return tuple(files)


@st.composite
def locks(draw: st.DrawFn) -> LockFile:
    names = draw(
        st.lists(
            st.from_regex(r"[a-z0-9][a-z0-9_.\-]{0,20}", fullmatch=True), max_size=4, unique=True
        )
    )
    models = {}
    for name in names:
        commit = draw(hex40)
        models[name] = LockedModel(
            repo=f"org/{name}",
            revision=draw(st.sampled_from(["main", "v1.0", commit])),
            include=(),
            exclude=tuple(
                sorted(set(draw(st.lists(st.sampled_from(["*.bin", "*.md"]), max_size=2))))
            ),
            commit=commit,
            files=tuple(f for f in draw(locked_files()) if not f.path.endswith((".bin", ".md"))),
        )
    return LockFile(models=models)


def outcome_of(text: str) -> LockFile | None:
    try:
        lock = parse(text, SOURCE)
    except LockFileError as e:
        assert e.problems and all(p.strip() for p in e.problems)
        assert str(e).startswith(f"{SOURCE}:"), str(e)
        assert all(f"{SOURCE}:{p}" in str(e) or f"{SOURCE}: {p}" in str(e) for p in e.problems)
        return None
    for entry in lock.models.values():
        for f in entry.files:
            parts = f.path.replace("\\", "/").split("/")
            assert not f.path.startswith("/") and ".." not in parts, f.path
    return lock


@PROPERTY
@given(locks())
def test_a_lock_survives_render_and_parse_and_renders_the_same_bytes(lock: LockFile) -> None:
    text = render(lock, "models.yaml")
    again = parse(text, SOURCE)
    assert again == lock
    assert render(again, "models.yaml") == text


@PROPERTY
@given(st.text(max_size=400))
def test_any_text_is_a_lock_or_refused_naming_the_file(text: str) -> None:
    outcome_of(text)


@PROPERTY
@given(documents())
def test_any_document_is_a_lock_or_refused_naming_the_file(document: Any) -> None:
    outcome_of(yaml.safe_dump(document, allow_unicode=True))


def _entry_places(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    places: list[tuple[Any, ...]] = []
    for name, entry in data["models"].items():
        places += [("models", name, key) for key in entry]
        for index, f in enumerate(entry["files"]):
            places += [("models", name, "files", index, key) for key in f]
    return places


@PROPERTY
@given(locks().filter(lambda lock: any(m.files for m in lock.models.values())), st.data())
def test_a_hand_edited_lock_is_a_lock_or_refused_naming_the_file(
    lock: LockFile, data: st.DataObject
) -> None:
    document = yaml.safe_load(render(lock, "models.yaml"))
    assert document["kind"] == LOCK_KIND
    edited = copy.deepcopy(document)
    place = data.draw(st.sampled_from(_entry_places(edited)))
    parent: Any = edited
    for step in place[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()):
        del parent[place[-1]]
    else:
        parent[place[-1]] = data.draw(st.one_of(scalars, tricky_text, documents(max_leaves=4)))
    outcome_of(yaml.safe_dump(edited, allow_unicode=True))

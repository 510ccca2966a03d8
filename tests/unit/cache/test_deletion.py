"""Deleting from the cache, step by step, against real files: what each step removes, what it
leaves for other revisions and other tools, and what the whole deletion records."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from controller.cache import deletion, layout
from controller.domain import Action, ActionKind, FileWork, Reason
from controller.store import StateStore, leases
from reconcilers.base import FileOutcome
from tests.support import repos
from tests.support.factories import NOW
from tests.unit.store.samples import verification

REPO = "org/model"
WEIGHTS = b"weights " * 64
CONFIG = b'{"layers": 2}'
TOKENIZER = b"vocab"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hub"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.open(tmp_path / "state") as opened:
        yield opened


def folder(cache: Path) -> Path:
    return layout.repo_folder(cache, REPO)


def snapshot(cache: Path, commit: str) -> Path:
    return layout.snapshot_dir(cache, REPO, commit)


def etags(cache: Path, commit: str) -> dict[str, str]:
    """Each entry of a snapshot and the blob its link names."""
    root = snapshot(cache, commit)
    return {
        (Path(d) / n).relative_to(root).as_posix(): Path(os.readlink(Path(d) / n)).name
        for d, _dirs, names in os.walk(root)
        for n in names
    }


def files_on_disk(cache: Path) -> set[str]:
    """Every file and link under the repo folder, relative to it."""
    root = folder(cache)
    return {
        (Path(d) / n).relative_to(root).as_posix()
        for d, _dirs, names in os.walk(root)
        for n in names
    }


def dirs_on_disk(cache: Path) -> set[str]:
    root = folder(cache)
    return {
        (Path(d) / n).relative_to(root).as_posix() for d, dirs, _ in os.walk(root) for n in dirs
    }


def action(cache: Path, commit: str, paths: list[str] | None = None) -> Action:
    """The deletion of ``paths`` (all of the snapshot's entries when None) of ``commit``."""
    tree = etags(cache, commit)
    chosen = sorted(tree) if paths is None else paths
    files = tuple(FileWork(p, 1, tree[p]) for p in chosen)
    return Action(
        kind=ActionKind.DELETE,
        model="m",
        repo=REPO,
        revision="main",
        commit=commit,
        files=files,
        bytes=len(files),
        reason=Reason.UNUSED,
        message="unused for 30 days",
    )


class Clock:
    """A clock that moves a second at each reading, so start and finish differ."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        return NOW + timedelta(seconds=self.readings)


def run(
    cache: Path, store: StateStore, act: Action, *, live: bool = False
) -> tuple[FileOutcome, ...]:
    return deletion.delete(act, cache_dir=cache, store=store, clock=Clock(), is_live=lambda _: live)


# --- the whole deletion ---------------------------------------------------------------------


def test_deleting_the_only_revision_removes_the_repo_folder_and_closes_the_journal(
    cache: Path, store: StateStore
) -> None:
    commit = repos.publish(cache, REPO, {"model.safetensors": WEIGHTS, "config.json": CONFIG})
    (folder(cache) / "refs" / "pr").mkdir()
    (folder(cache) / "refs" / "pr" / "1").write_text(commit)
    act = action(cache, commit)
    store.adopt("m", REPO, commit, ["config.json", "model.safetensors"], NOW)
    for etag in etags(cache, commit).values():
        store.record_verification(REPO, verification(etag))

    outcomes = run(cache, store, act)

    assert [(o.path, o.ok) for o in outcomes] == [
        ("config.json", True),
        ("model.safetensors", True),
    ]
    assert not folder(cache).exists()
    assert store.owned() == [] and store.verifications() == {}
    assert store.pending_deletions() == []
    (done,) = store.deletion_history()
    assert (done.model, done.repo, done.commit, done.reason, done.message) == (
        "m",
        REPO,
        commit,
        Reason.UNUSED,
        "unused for 30 days",
    )
    assert (done.files, done.started_at, done.finished_at) == (
        act.files,
        NOW + timedelta(seconds=1),
        NOW + timedelta(seconds=2),
    )


def test_a_live_lease_refuses_the_deletion_and_nothing_changes(
    cache: Path, store: StateStore
) -> None:
    commit = repos.publish(cache, REPO, {"model.safetensors": WEIGHTS})
    store.add_lease(leases.new_lease("m", NOW, pid=os.getpid()))
    before = files_on_disk(cache)

    (outcome,) = run(cache, store, action(cache, commit), live=True)

    assert (outcome.path, outcome.ok, outcome.reason) == ("", False, Reason.IN_USE)
    assert "m is in use" in outcome.detail
    assert files_on_disk(cache) == before
    assert store.pending_deletions() == [] and store.deletion_history() == []


def test_another_tools_file_keeps_the_snapshot_its_refs_and_its_blob(
    cache: Path, store: StateStore
) -> None:
    commit = repos.publish(
        cache, REPO, {"model.safetensors": WEIGHTS, "config.json": CONFIG, "tok/vocab": TOKENIZER}
    )
    tree = etags(cache, commit)
    store.adopt("m", REPO, commit, ["config.json", "model.safetensors", "tok/vocab"], NOW)
    for etag in tree.values():
        store.record_verification(REPO, verification(etag))

    run(cache, store, action(cache, commit, ["model.safetensors", "tok/vocab"]))

    assert files_on_disk(cache) == {
        f"snapshots/{commit}/config.json",
        f"blobs/{tree['config.json']}",
        "refs/main",
    }
    assert "snapshots/" + commit + "/tok" not in dirs_on_disk(cache)  # emptied, so pruned
    assert layout.read_ref(folder(cache) / "refs" / "main") == commit
    assert [o.path for o in store.owned()] == ["config.json"]
    assert set(store.verifications_for(REPO)) == {tree["config.json"]}


def test_a_blob_another_revision_links_stays_with_its_verification(
    cache: Path, store: StateStore
) -> None:
    old = repos.publish(cache, REPO, {"model.safetensors": WEIGHTS, "config.json": CONFIG})
    new = repos.publish(cache, REPO, {"model.safetensors": WEIGHTS, "config.json": b"{}"})
    tree = etags(cache, old)
    for etag in tree.values():
        store.record_verification(REPO, verification(etag))

    run(cache, store, action(cache, old))

    assert not snapshot(cache, old).exists()
    assert (folder(cache) / "blobs" / tree["model.safetensors"]).is_file()
    assert not (folder(cache) / "blobs" / tree["config.json"]).exists()
    assert layout.read_ref(folder(cache) / "refs" / "main") == new  # names the other commit
    assert set(store.verifications_for(REPO)) == {tree["model.safetensors"]}
    assert etags(cache, new)["model.safetensors"] == tree["model.safetensors"]


def test_running_a_deletion_again_finishes_it_and_changes_nothing_more(
    cache: Path, store: StateStore
) -> None:
    keep = repos.publish(cache, REPO, {"config.json": CONFIG}, branch="keep")
    gone = repos.publish(cache, REPO, {"model.safetensors": WEIGHTS})
    act = action(cache, gone)
    run(cache, store, act)
    after_first = files_on_disk(cache)

    outcomes = run(cache, store, act)

    assert (
        files_on_disk(cache)
        == after_first
        == {
            f"snapshots/{keep}/config.json",
            f"blobs/{etags(cache, keep)['config.json']}",
            "refs/keep",
        }
    )
    assert all(o.ok for o in outcomes)
    assert store.pending_deletions() == [] and len(store.deletion_history()) == 2


# --- step 2: refs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refs", "left"),
    [
        ({"main": "a" * 40}, {}),
        ({"main": "a" * 40, "dev": "b" * 40}, {"dev": "b" * 40}),
        ({"pr/1": "a" * 40, "pr/2": "b" * 40}, {"pr/2": "b" * 40}),
        ({"pr/1": "a" * 40, "main": "a" * 40, "v1": "c" * 40}, {"v1": "c" * 40}),
        ({}, {}),
    ],
)
def test_remove_refs_removes_exactly_the_refs_naming_the_commit(
    tmp_path: Path, refs: Mapping[str, str], left: Mapping[str, str]
) -> None:
    root = tmp_path / "refs"
    root.mkdir()
    for name, commit in refs.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(commit)

    deletion.remove_refs(root, "a" * 40)

    found = {
        (Path(d) / n).relative_to(root).as_posix(): (Path(d) / n).read_text()
        for d, _dirs, names in os.walk(root)
        for n in names
    }
    assert found == left
    assert root.is_dir()  # the refs folder itself stays for remove_if_empty to judge
    assert (root / "pr").is_dir() == any(name.startswith("pr/") for name in left)


def test_remove_refs_of_a_missing_refs_folder_does_nothing(tmp_path: Path) -> None:
    deletion.remove_refs(tmp_path / "refs", "a" * 40)
    assert list(tmp_path.iterdir()) == []


# --- step 3: entries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "deleted", "left_dirs"),
    [
        ({"a": b"1", "b": b"2"}, ["a", "b"], {"snapshots"}),
        ({"a": b"1", "b": b"2"}, ["a"], {"snapshots", "snapshots/C"}),
        ({"d/e/f": b"1", "g": b"2"}, ["d/e/f"], {"snapshots", "snapshots/C"}),
        ({"d/e/f": b"1", "d/h": b"2"}, ["d/e/f"], {"snapshots", "snapshots/C", "snapshots/C/d"}),
        ({"d/e/f": b"1"}, ["d/e/f"], {"snapshots"}),
        ({"a": b"1"}, ["a", "not-there"], {"snapshots"}),
    ],
)
def test_unlink_entries_prunes_what_they_leave_empty_and_no_further(
    cache: Path, tree: dict[str, bytes], deleted: list[str], left_dirs: set[str]
) -> None:
    commit = repos.publish(cache, REPO, tree)
    root = snapshot(cache, commit)
    blobs_before = set((folder(cache) / "blobs").iterdir())

    deletion.unlink_entries([root / p for p in deleted], root)

    entries = {p for p in tree if p not in deleted}
    assert (set(etags(cache, commit)) if root.exists() else set()) == entries
    found = {d.replace(commit, "C") for d in dirs_on_disk(cache)} - {"blobs", "refs"}
    assert found == left_dirs
    assert set((folder(cache) / "blobs").iterdir()) == blobs_before  # blobs are step 4's


# --- step 4: blobs --------------------------------------------------------------------------


def test_remove_unlinked_blobs_frees_only_blobs_no_entry_links(cache: Path) -> None:
    first = repos.publish(cache, REPO, {"a": b"shared", "b": b"only first"})
    tree = etags(cache, first)
    second = repos.publish(cache, REPO, {"a": b"shared", "c": b"only second"})
    deletion.unlink_entries(
        [snapshot(cache, first) / "a", snapshot(cache, first) / "b"], snapshot(cache, first)
    )
    unknown = "f" * 64  # named in the plan, never on disk: nothing to do, and it is gone

    gone = deletion.remove_unlinked_blobs(cache, REPO, [tree["b"], unknown, tree["a"]])

    assert gone == sorted([tree["b"], unknown])
    blobs = {p.name for p in (folder(cache) / "blobs").iterdir()}
    assert blobs == set(etags(cache, second).values())
    assert (cache / ".locks" / folder(cache).name / f"{tree['b']}.lock").exists()


def test_a_link_from_a_nested_entry_keeps_its_blob(cache: Path) -> None:
    commit = repos.publish(cache, REPO, {"deep/er/a": b"nested", "b": b"flat"})
    tree = etags(cache, commit)

    gone = deletion.remove_unlinked_blobs(cache, REPO, tree.values())

    assert gone == []
    assert {p.name for p in (folder(cache) / "blobs").iterdir()} == set(tree.values())


@pytest.mark.parametrize("kind", ["copy", "link-elsewhere", "link-to-a-blob-subfolder"])
def test_an_entry_that_is_not_a_link_into_blobs_does_not_keep_a_blob(
    cache: Path, tmp_path: Path, kind: str
) -> None:
    commit = repos.publish(cache, REPO, {"a": b"bytes"})
    (etag,) = etags(cache, commit).values()
    entry = snapshot(cache, commit) / "a"
    entry.unlink()
    if kind == "copy":
        entry.write_bytes(b"bytes")  # a real file named like the link: it links nothing
    elif kind == "link-elsewhere":
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / etag).write_bytes(b"bytes")
        entry.symlink_to(tmp_path / "elsewhere" / etag)
    else:
        entry.symlink_to(Path("../../blobs/sub") / etag)

    assert deletion.remove_unlinked_blobs(cache, REPO, [etag]) == [etag]
    assert not (folder(cache) / "blobs" / etag).exists()


# --- step 5: the repo folder ----------------------------------------------------------------

LEFT_OVER: dict[str, tuple[dict[str, str], bool]] = {
    # name: (files left besides empty snapshots/, refs/, blobs/ -- "" makes a directory), kept
    "nothing": ({}, False),
    "markers": (
        {".no_exist/" + "a" * 40 + "/x.json": "", "trees/t": "x", ".quarantine/e": "damaged"},
        False,
    ),
    "a marker that is a file": ({"trees": "listing"}, False),
    "a blob": ({"blobs/e": "x"}, True),
    "a partial": ({"blobs/e.incomplete": "x"}, True),
    "a ref": ({"refs/main": "a" * 40}, True),
    "a nested ref": ({"refs/pr/1": "a" * 40}, True),
    "an entry": ({"snapshots/" + "a" * 40 + "/x": "x"}, True),
    "another tool's file": ({"notes.txt": "mine"}, True),
    "another tool's folder": ({"other/": ""}, True),
}


@pytest.mark.parametrize("case", sorted(LEFT_OVER))
def test_remove_if_empty_removes_a_folder_only_markers_and_empty_directories_hold(
    cache: Path, case: str
) -> None:
    files, kept = LEFT_OVER[case]
    root = folder(cache)
    for part in ("snapshots/" + "b" * 40 + "/sub", "refs/pr", "blobs"):
        (root / part).mkdir(parents=True)
    for name, text in files.items():
        if name.endswith("/"):
            (root / name).mkdir()
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    before = files_on_disk(cache), dirs_on_disk(cache)

    deletion.remove_if_empty(root)

    if kept:
        assert (files_on_disk(cache), dirs_on_disk(cache)) == before
    else:
        assert not root.exists()
    assert cache.is_dir()


def test_a_dangling_link_keeps_the_folder(cache: Path) -> None:
    root = folder(cache)
    (root / "snapshots" / ("a" * 40)).mkdir(parents=True)
    (root / "snapshots" / ("a" * 40) / "x").symlink_to("../../blobs/gone")

    deletion.remove_if_empty(root)

    assert (root / "snapshots" / ("a" * 40) / "x").is_symlink()


def test_a_link_to_a_directory_in_a_marker_is_never_followed(cache: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "precious").write_bytes(b"not the cache's")
    root = folder(cache)
    (root / "snapshots").mkdir(parents=True)
    (root / ".no_exist").mkdir()
    (root / ".no_exist" / "escape").symlink_to(outside)

    deletion.remove_if_empty(root)  # the link cannot go as a directory: left, and no error

    assert (outside / "sub" / "precious").read_bytes() == b"not the cache's"
    assert (root / ".no_exist" / "escape").is_symlink()


def test_remove_if_empty_of_a_missing_folder_does_nothing(cache: Path) -> None:
    deletion.remove_if_empty(folder(cache))
    assert not cache.exists()


# --- quarantine -----------------------------------------------------------------------------


def quarantine_action(names: list[str]) -> Action:
    return Action(
        kind=ActionKind.DELETE,
        model="m",
        repo=REPO,
        revision="",
        commit="",
        files=tuple(FileWork(f"quarantined {n}", 1, n) for n in names),
        bytes=len(names),
        reason=Reason.QUARANTINE_EXPIRED,
        message="quarantined 8 days ago",
    )


@pytest.mark.parametrize(
    ("quarantined", "discarded", "others", "left"),
    [
        (["e1", "e2"], ["e1", "e2"], False, set()),
        (["e1", "e2"], ["e1", "missing"], False, {".quarantine/e2"}),
        (["e1"], ["e1"], True, {"blobs/b"}),
    ],
)
def test_discarding_quarantined_files_leaves_nothing_of_them(
    cache: Path, quarantined: list[str], discarded: list[str], others: bool, left: set[str]
) -> None:
    root = folder(cache)
    for name in quarantined:
        target = layout.quarantine_path(cache, REPO, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"damaged")
    if others:
        (root / "blobs").mkdir()
        (root / "blobs" / "b").write_bytes(b"kept")

    outcomes = deletion.discard_quarantined(cache, quarantine_action(discarded))

    assert [(o.path, o.ok) for o in outcomes] == [(f"quarantined {n}", True) for n in discarded]
    assert (files_on_disk(cache) if root.exists() else set()) == left
    assert (root / ".quarantine").exists() == any(p.startswith(".quarantine") for p in left)

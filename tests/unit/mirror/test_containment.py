"""The mirror serves only what lies inside its cache directory: a repo folder, a ref or a
snapshot reached through a link that leads out of it is not there, to the mirror.

Table-driven over real links in a temporary directory; each case says how realpath would
judge the path, which is the rule the mirror keeps.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controller.mirror.errors import HubError
from controller.mirror.repo_view import _within, open_repo
from tests.support.repos import publish, repo_folder

REPO = "org/model"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``root`` with a directory, a link inside it to it, and links out to ``outside``."""
    root = (tmp_path / "root").resolve()
    outside = tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (outside / "x").mkdir(parents=True)
    (root / "link_in").symlink_to(root / "a")
    (root / "link_out").symlink_to(outside)
    (root / "a" / "up_and_out").symlink_to("../../outside")
    (root / "a" / "up_and_in").symlink_to("../a")
    return root, outside


@pytest.mark.parametrize(
    ("relative", "inside"),
    [
        ("a", True),
        ("a/b", True),
        ("a/missing/deeper", True),  # nothing there: as realpath, it stays where its name is
        ("link_in/b", True),  # a link, but to a directory of the cache
        ("a/up_and_in/b", True),
        ("link_out", False),
        ("link_out/x", False),
        ("a/up_and_out", False),
        ("a/up_and_out/x", False),
        ("a/../../outside", False),  # a name that climbs out without any link
        ("a/..", True),
        ("missing/../../outside", False),
    ],
)
def test_a_path_is_inside_the_cache_as_realpath_resolves_it(
    tree: tuple[Path, Path], relative: str, inside: bool
) -> None:
    root, _ = tree
    path = root / relative
    assert _within(path, root) is inside
    assert Path(os.path.realpath(path)).is_relative_to(root) is inside  # the rule it keeps


def test_a_path_named_outside_the_cache_is_outside(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    assert _within(outside / "x", root) is False
    assert _within(root.parent / "root-sibling", root) is False


def _published(tmp_path: Path) -> tuple[Path, Path, str]:
    cache = (tmp_path / "hub").resolve()
    commit = publish(cache, REPO, {"config.json": b"{}"})
    return cache, repo_folder(cache, REPO), commit


def _moved_out(path: Path, elsewhere: Path) -> None:
    """``path`` moved to ``elsewhere`` (outside the cache), and a link left in its place."""
    elsewhere.parent.mkdir(parents=True, exist_ok=True)
    path.rename(elsewhere)
    path.symlink_to(elsewhere)


def test_a_repo_folder_linked_out_of_the_cache_is_not_served(tmp_path: Path) -> None:
    cache, folder, _ = _published(tmp_path)
    assert open_repo(cache, REPO) is not None
    _moved_out(folder, tmp_path / "elsewhere" / folder.name)
    assert open_repo(cache, REPO) is None


def test_a_ref_linked_out_of_the_cache_names_no_commit(tmp_path: Path) -> None:
    cache, folder, commit = _published(tmp_path)
    _moved_out(folder / "refs" / "main", tmp_path / "elsewhere" / "main")
    view = open_repo(cache, REPO)
    assert view is not None
    with pytest.raises(HubError) as refused:
        view.resolve("main")
    assert refused.value.status == 404
    assert view.resolve(commit) == commit  # the snapshot itself is still served by its id


def test_a_snapshot_linked_out_of_the_cache_is_not_a_revision(tmp_path: Path) -> None:
    cache, folder, commit = _published(tmp_path)
    _moved_out(folder / "snapshots" / commit, tmp_path / "elsewhere" / commit)
    view = open_repo(cache, REPO)
    assert view is not None
    for revision in ("main", commit):
        with pytest.raises(HubError) as refused:
            view.resolve(revision)
        assert refused.value.status == 404


def test_a_link_that_stays_inside_the_cache_is_followed(tmp_path: Path) -> None:
    cache, folder, commit = _published(tmp_path)
    kept = cache / "kept" / "main"
    _moved_out(folder / "refs" / "main", kept)  # "out" of the repo, still inside the cache
    view = open_repo(cache, REPO)
    assert view is not None
    assert view.resolve("main") == commit


def test_a_link_into_another_repos_blobs_is_not_served(tmp_path: Path) -> None:
    """Only links whose first hop is the repo's own ``blobs/`` are its files: one into another
    repo's blobs (inside the cache, so no containment check refuses it) is left out."""
    cache, folder, commit = _published(tmp_path)
    other = publish(cache, "org/other", {"weights.bin": b"another repo's bytes"})
    other_folder = repo_folder(cache, "org/other")
    blob = os.readlink(other_folder / "snapshots" / other / "weights.bin")
    borrowed = folder / "snapshots" / commit / "borrowed.bin"
    borrowed.symlink_to(os.path.join("..", "..", "..", other_folder.name, "snapshots", other, blob))
    assert borrowed.resolve().is_file()  # a working link, to a file inside the cache
    view = open_repo(cache, REPO)
    assert view is not None
    assert set(view.revision("main").files) == {"config.json"}
    assert view.file(commit, "borrowed.bin") is None

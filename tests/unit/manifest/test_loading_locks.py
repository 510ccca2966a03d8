"""Loading a pass's input: real manifest and lock files on disk, and what the pass is given."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.domain import RemoteRevision
from controller.manifest import loading
from controller.manifest.loading import Loaded, Rejected
from controller.manifest.lockfile import LockFile, entry_from_remote, lock_path_for, render
from tests.support.cli import Workdir
from tests.support.factories import C1, CONFIG, README, WEIGHTS

MODEL = {"name": "m", "repo": "org/m", "include": ["*.json", "*.safetensors"]}
RELOCK = "run `reconcile lock` and commit the lock"


def manifests(tmp_path: Path, **changes: object) -> Path:
    work = Workdir(tmp_path, "http://127.0.0.1:9")
    work.write_manifest([{**MODEL, **changes}])
    return work.manifests


def write_lock(path: Path) -> None:
    """The lock file `reconcile lock` would write for the manifests at ``path`` now."""
    manifest_set, desired = loading.read_manifests(path)
    answer = RemoteRevision("org/m", "main", C1, (README, WEIGHTS, CONFIG))
    entries = {m.name: entry_from_remote(m, answer) for m in desired.models}
    for f in manifest_set.files:
        Path(lock_path_for(f.path)).write_text(render(LockFile(entries), Path(f.path).name))


def no_lock(tmp_path: Path) -> Path:
    return manifests(tmp_path)


def fresh_lock(tmp_path: Path) -> Path:
    path = manifests(tmp_path)
    write_lock(path)
    return path


def stale_lock(tmp_path: Path) -> Path:
    fresh_lock(tmp_path)
    return manifests(tmp_path, include=["*.safetensors"])  # edited after locking


def unreadable_lock(tmp_path: Path) -> Path:
    path = fresh_lock(tmp_path)
    (path / "models.lock.yaml").write_text("<<<<<<< HEAD\nmodels: {}\n")  # a merge conflict
    return path


OUT_OF_SYNC = f"--locked: the lock is out of sync with the manifests; {RELOCK}"
UNUSABLE = f"the lock cannot be used; {RELOCK}"
STALE = (
    "m: the lock is stale: include is ['*.safetensors'] in the manifest, "
    "['*.json', '*.safetensors'] in the lock"
)

# (files on disk, --locked) -> the models pinned and the warnings, or the last problem said.
CASES: list[tuple[Callable[[Path], Path], bool, set[str], tuple[str, ...], str | None]] = [
    (no_lock, False, set(), (), None),
    (no_lock, True, set(), (), OUT_OF_SYNC),
    (fresh_lock, False, {"m"}, (), None),
    (fresh_lock, True, {"m"}, (), None),
    (stale_lock, False, set(), (f"{STALE} (entry ignored; {RELOCK})",), None),
    (stale_lock, True, set(), (), OUT_OF_SYNC),
    (unreadable_lock, False, set(), (), UNUSABLE),
    (unreadable_lock, True, set(), (), UNUSABLE),
]


@pytest.mark.parametrize(("files", "locked", "pinned", "warnings", "refusal"), CASES)
def test_what_a_pass_is_given(
    tmp_path: Path,
    files: Callable[[Path], Path],
    locked: bool,
    pinned: set[str],
    warnings: tuple[str, ...],
    refusal: str | None,
) -> None:
    path = files(tmp_path)
    if refusal is not None:
        with pytest.raises(Rejected) as rejected:
            loading.load(path, locked=locked)
        assert rejected.value.problems[-1] == refusal
        assert rejected.value.conclusion is None
        return
    loaded = loading.load(path, locked=locked)
    assert set(loaded.pinned) == pinned
    assert all(rev.commit == C1 and rev.locked for rev in loaded.pinned.values())
    assert loaded.warnings == warnings
    assert [m.name for m in loaded.desired.models] == ["m"]


def test_locked_names_what_is_out_of_sync(tmp_path: Path) -> None:
    with pytest.raises(Rejected) as rejected:
        loading.load(stale_lock(tmp_path), locked=True)
    assert rejected.value.problems == (STALE, OUT_OF_SYNC)
    with pytest.raises(Rejected) as rejected:
        loading.load(no_lock(tmp_path / "other"), locked=True)
    manifest = tmp_path / "other" / "manifests" / "models.yaml"
    assert rejected.value.problems[0] == (
        f"{manifest}: no lock file ({manifest.with_name('models.lock.yaml')})"
    )


def test_invalid_manifests_are_rejected_with_every_problem_and_a_count(tmp_path: Path) -> None:
    path = manifests(tmp_path, priority="urgent", policy="sometimes")
    with pytest.raises(Rejected) as rejected:
        loading.load(path)
    assert len(rejected.value.problems) == 2
    assert all(p.startswith(f"{path / 'models.yaml'}:") for p in rejected.value.problems)
    assert rejected.value.conclusion == "2 problems found; nothing was changed."


def test_the_key_changes_with_what_the_lock_files_pin(tmp_path: Path) -> None:
    def key() -> str:
        loaded: Loaded = loading.load(tmp_path / "manifests")
        return loaded.key

    manifests(tmp_path)
    unpinned = key()
    assert key() == unpinned  # loading again changes nothing
    write_lock(tmp_path / "manifests")
    assert key() != unpinned  # same manifests, now pinned: a pass has work to redo

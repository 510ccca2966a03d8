"""Deleting from the Hugging Face cache so that every instant leaves a cache readers accept.

This is the I/O behind ``reconcilers.retention.apply`` (through ``CacheWorkspace.delete``).
It follows huggingface_hub's ``DeleteCacheStrategy.execute`` (``utils/_cache_manager.py``):
links go before the blobs they point to, so a kill at any instant never leaves a snapshot
entry pointing at nothing -- ``scan_cache_dir`` treats one broken link as a corrupted repo
and skips the whole repo, and ``hf_hub_download(local_files_only=True)`` would fail on it
instead of reporting the file missing.  One step is ordered more strictly than there: refs
go *before* the snapshot they name (huggingface_hub removes snapshots first), because a ref
naming a missing snapshot is the other thing that makes ``scan_cache_dir`` reject a repo.

For one revision's entries:

1. journal the deletion in the state store (refused while a live lease holds the model);
2. remove the refs naming the commit, if no entry of another tool's will keep the snapshot;
3. unlink the entries, then the directories they leave empty, then the snapshot if empty;
4. remove each blob those entries linked that no entry of the repo links any more (checked
   on disk now, under huggingface_hub's per-blob lock, not taken from the plan: another
   process may have linked it meanwhile);
5. remove the repo folder when nothing but empty directories and markers is left;
6. close the journal and forget the ownership and verifications of what went.

Steps 2 to 5 are each a function of their own (:func:`remove_refs`, :func:`unlink_entries`,
:func:`remove_unlinked_blobs`, :func:`remove_if_empty`).  Killed anywhere, the journal entry
stays open, the next plan proposes the deletion again (``Interrupted``), and running these
steps again finishes it: each one is idempotent.  The only instant ``scan_cache_dir`` could
object to is between the last two calls of step 5 (the empty ``snapshots/`` is gone, the
folder not yet), and the next apply removes the folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from controller.cache import layout
from controller.cache.blob_lock import blob_lock
from controller.domain import Action, Lease, Reason
from controller.store import InUseError, StateStore
from reconcilers.base import FileOutcome

# What a repo folder holds besides its snapshots, refs and blobs, none of it worth keeping
# once those are gone: huggingface_hub's negative cache and tree listings, and modelsync's
# quarantined damaged bytes of the model.
_MARKERS = (".no_exist", "trees", layout.QUARANTINE_DIR)

Clock = Callable[[], datetime]


def delete(
    action: Action,
    *,
    cache_dir: Path,
    store: StateStore,
    clock: Clock,
    is_live: Callable[[Lease], bool],
) -> tuple[FileOutcome, ...]:
    try:
        journal = store.begin_deletion(
            model=action.model,
            repo=action.repo,
            commit=action.commit,
            reason=action.reason,
            message=action.message,
            files=action.files,
            at=clock(),
            is_live=is_live,
        )
    except InUseError as e:
        return (FileOutcome(path="", ok=False, reason=Reason.IN_USE, detail=str(e)),)
    folder = layout.repo_folder(cache_dir, action.repo)
    snapshot = layout.snapshot_dir(cache_dir, action.repo, action.commit)
    entries = [
        layout.snapshot_path(cache_dir, action.repo, action.commit, f.path) for f in action.files
    ]
    if not _others_in(snapshot, set(entries)):
        remove_refs(folder / "refs", action.commit)
    unlink_entries(entries, snapshot)
    gone = remove_unlinked_blobs(cache_dir, action.repo, {f.etag for f in action.files if f.etag})
    for etag in gone:
        store.forget_verification(action.repo, etag)
    remove_if_empty(folder)
    paths = [f.path for f in action.files]
    store.finish_deletion(journal, clock(), repo=action.repo, commit=action.commit, paths=paths)
    return tuple(FileOutcome(f.path, ok=True) for f in action.files)


def discard_quarantined(cache_dir: Path, action: Action) -> tuple[FileOutcome, ...]:
    """Remove quarantined files (``action.files``, named by their blob name in ``etag``),
    then the emptied ``.quarantine/`` and a repo folder left with nothing else.

    No journal: these bytes are in no snapshot and nothing links them, so a kill between two
    unlinks leaves a quarantine the next plan proposes again, and every step is idempotent.
    """
    folder = layout.repo_folder(cache_dir, action.repo)
    for f in action.files:
        layout.quarantine_path(cache_dir, action.repo, f.etag).unlink(missing_ok=True)
    quarantine = folder / layout.QUARANTINE_DIR
    with contextlib.suppress(OSError):
        quarantine.rmdir()  # kept when something else is left in it
    # remove_if_empty counts the quarantine as a marker, so files still in their grace
    # period would go with the folder: only a folder whose quarantine is gone is judged.
    if not quarantine.exists():
        remove_if_empty(folder)
    return tuple(FileOutcome(f.path, ok=True) for f in action.files)


def _others_in(snapshot: Path, ours: set[Path]) -> bool:
    """Whether the snapshot holds an entry besides ``ours`` (another tool's file, or a link
    being written right now): then the snapshot, and the refs naming it, stay."""
    for dirpath, _dirs, names in os.walk(snapshot):
        for name in names:
            if Path(dirpath) / name not in ours:
                return True
    return False


def remove_refs(refs: Path, commit: str) -> None:
    """Step 2: remove every ref under ``refs`` that names ``commit``."""
    for dirpath, _dirs, names in os.walk(refs):
        for name in names:
            ref = Path(dirpath) / name
            if layout.read_ref(ref) != commit:
                continue
            ref.unlink(missing_ok=True)
            _prune_empty(ref.parent, stop=refs)  # refs/pr/1 leaves refs/pr behind otherwise


def unlink_entries(entries: Iterable[Path], snapshot: Path) -> None:
    """Step 3: unlink a snapshot's entries, then the directories (and snapshot) left empty."""
    for entry in entries:
        entry.unlink(missing_ok=True)
        _prune_empty(entry.parent, stop=snapshot.parent)


def _prune_empty(directory: Path, *, stop: Path) -> None:
    """Remove ``directory`` and its parents up to (not including) ``stop`` while empty."""
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or already gone and so is nothing to do)
        directory = directory.parent


def _linked_blobs(folder: Path) -> set[str]:
    blobs = Path(os.path.normpath(folder / "blobs"))
    linked: set[str] = set()
    for dirpath, _dirs, names in os.walk(folder / "snapshots"):
        for name in names:
            entry = Path(dirpath) / name
            with contextlib.suppress(OSError):
                if entry.is_symlink():
                    target = Path(os.path.normpath(entry.parent / os.readlink(entry)))
                    if target.parent == blobs:
                        linked.add(target.name)
    return linked


def remove_unlinked_blobs(cache_dir: Path, repo: str, etags: Iterable[str]) -> list[str]:
    """Step 4: remove those of ``etags`` that no snapshot entry links; returns the removed."""
    folder = layout.repo_folder(cache_dir, repo)
    gone = []
    for etag in sorted(etags):
        blob = layout.blob_path(cache_dir, repo, etag)
        # huggingface_hub's per-blob lock, which every download of this blob takes too
        # (modelsync's and huggingface_hub's): nobody links the blob between check and unlink.
        with blob_lock(cache_dir, repo, etag):
            if etag in _linked_blobs(folder):
                continue
            blob.unlink(missing_ok=True)
        gone.append(etag)
    return gone


def remove_if_empty(folder: Path) -> None:
    """Step 5: remove a repo folder that holds no snapshot entry, ref or blob any more.

    Anything else in it that modelsync does not know (another tool's file) keeps it.
    ``snapshots/`` goes last: a folder without it is what ``scan_cache_dir`` objects to.
    """
    if not folder.is_dir():
        return
    for part in ("snapshots", "refs", "blobs"):
        if any(path.is_file() or path.is_symlink() for path in (folder / part).rglob("*")):
            return
    known = {"snapshots", "refs", "blobs", *_MARKERS}
    if any(child.name not in known for child in folder.iterdir()):
        return
    for child in sorted(folder.iterdir(), key=lambda c: c.name == "snapshots"):
        _rmtree(child)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    for dirpath, dirs, names in os.walk(path, topdown=False):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(dirpath, name))
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(dirpath, name))
    with contextlib.suppress(OSError):
        path.rmdir()


"""Checking one cached file against its expected digest, and remembering the verdict.

Shared by apply (which moves damaged files aside at once) and ``reconcile verify`` (which
only reports them), so both hash the same way, trust the same records and word their
findings alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.cache.formats import safetensors_problem
from controller.cache.hashing import check_blob
from controller.domain import CachedFile, FileWork, Reason, Verification
from controller.store import StateStore


@dataclass(frozen=True)
class Inspection:
    ok: bool
    hashed: bool  # False when an unchanged, already verified file was trusted unread
    reason: Reason | None = None
    detail: str = ""


def inspect(
    store: StateStore,
    repo: str,
    f: FileWork,
    path: Path,
    clock: Callable[[], datetime],
    *,
    trust_unchanged: bool = True,
    stop: Callable[[], bool] | None = None,
    known: Mapping[str, Verification] | None = None,
) -> Inspection:
    """``stop`` is asked between chunks of the hash; a stop raises
    :class:`~controller.system.cancel.Cancelled` before any verdict is recorded: what the store
    knew of the file stays as it was, and no damage is reported for a partial read.

    ``known``: the repo's verification records by blob (``store.verifications_for``), from a
    caller inspecting many of its files: one query for them all rather than one per file.
    """
    try:
        st = path.stat()
        if (
            trust_unchanged
            and _unchanged(_record(store, repo, f, known), f, st.st_size, st.st_mtime_ns, st.st_ino)
            and not _malformed(f, path, st.st_size)
        ):
            return Inspection(ok=True, hashed=False)
        ok, digest = (False, "") if st.st_size != f.size else check_blob(path, f.etag, stop=stop)
    except OSError as e:
        return Inspection(
            False, False, Reason.DOWNLOAD_FAILED, f"{f.path}: cannot read: {e.strerror}"
        )
    store.record_verification(
        repo,
        Verification(
            blob=f.etag,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            digest=digest,
            ok=ok,
            checked_at=clock(),
        ),
    )
    if ok:
        return Inspection(ok=True, hashed=True)
    if st.st_size != f.size:
        return Inspection(
            False, True, Reason.SIZE_MISMATCH, f"{f.path}: {st.st_size} bytes, expected {f.size}"
        )
    return Inspection(
        False,
        True,
        Reason.CHECKSUM_MISMATCH,
        f"{f.path}: content hashes to {digest[:16]}…, expected {f.etag[:16]}…",
    )


def _malformed(f: FileWork, path: Path, size: int) -> bool:
    """A trusted file whose structure is inconsistent is hashed after all.

    The structure only triggers a hash, it never decides: the digest is the verdict, so a
    file the hub itself publishes oddly cannot make a model flap between states.
    """
    return f.path.endswith(".safetensors") and safetensors_problem(path, size) is not None


def _record(
    store: StateStore, repo: str, f: FileWork, known: Mapping[str, Verification] | None
) -> Verification | None:
    return store.verification(repo, f.etag) if known is None else known.get(f.etag)


def _unchanged(
    record: Verification | None, f: FileWork, size: int, mtime_ns: int, inode: int
) -> bool:
    """Unchanged size, mtime and inode since a good verification mean the same bytes."""
    entry = CachedFile(f.path, f.etag, size, mtime_ns=mtime_ns, inode=inode)
    return record is not None and record.ok and record.still_describes(entry)

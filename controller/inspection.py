"""Checking one cached file against its expected digest, and remembering the verdict.

Shared by apply (which moves damaged files aside at once) and ``reconcile verify`` (which
only reports them), so both hash the same way, trust the same records and word their
findings alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from controller.domain import CachedFile, FileWork, Reason, Verification
from controller.formats import safetensors_problem
from controller.hashing import check_blob
from controller.state import StateStore


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
) -> Inspection:
    try:
        st = path.stat()
        if (
            trust_unchanged
            and _unchanged(store, repo, f, st.st_size, st.st_mtime_ns, st.st_ino)
            and not _malformed(f, path, st.st_size)
        ):
            return Inspection(ok=True, hashed=False)
        ok, digest = (False, "") if st.st_size != f.size else check_blob(path, f.etag)
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


def _unchanged(
    store: StateStore, repo: str, f: FileWork, size: int, mtime_ns: int, inode: int
) -> bool:
    """Unchanged size, mtime and inode since a good verification mean the same bytes."""
    known = store.verification(repo, f.etag)
    entry = CachedFile(f.path, f.etag, size, mtime_ns=mtime_ns, inode=inode)
    return known is not None and known.ok and known.still_describes(entry)

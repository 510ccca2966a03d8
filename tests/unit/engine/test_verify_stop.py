"""A stop asked while a large cached file is being hashed ends the hash at the next chunk.

The file then stays unverified: nothing is recorded for it (neither verified nor damaged),
it is not quarantined, and the pass ends as a stopped pass does.  Every file here is real
and hashed for real; the stop is a real :class:`StopSignal`, set from inside the hash once
the file has been read past its first chunk.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from controller.cache import layout
from controller.cache.hashing import CHUNK_SIZE
from controller.domain import (
    Action,
    ActionKind,
    DesiredModel,
    FileWork,
    Plan,
    Reason,
    Verification,
)
from controller.domain.assessment import Assessment
from controller.engine.apply import apply_plan
from controller.engine.health import verify
from controller.engine.workspace import CacheWorkspace
from controller.store import StateStore
from controller.system.cancel import Cancelled, StopSignal
from tests.support import repos
from tests.support.factories import NOW

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fdinfo").is_dir(), reason="reads file positions from /proc"
)

MODEL = "big"
REPO = "org/big"
SIZE = 6 * CHUNK_SIZE + 4321  # seven reads: stopped after the first, most stays unread


class StopOnceRead(StopSignal):
    """Stops everything when asked while ``path`` has been read past ``offset``.

    Hashing asks its stop between chunks, so this is a stop arriving mid-file, at a point
    the test knows exactly; ``positions`` keeps the read position at each of those asks.
    """

    def __init__(self, path: Path, offset: int) -> None:
        super().__init__()
        self.path = str(path.resolve())
        self.offset = offset
        self.positions: list[int] = []

    def stopped(self, model: str) -> bool:
        position = _read_position(self.path)
        if position is not None:
            self.positions.append(position)
            if position >= self.offset:
                self.stop_all()
        return super().stopped(model)


def _read_position(path: str) -> int | None:
    """How far this process has read into ``path``; None while it is not open."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != path:
                continue
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue  # closed since the listing (the listing's own descriptor, for one)
        return int(info.split("pos:", 1)[1].split()[0])
    return None


@dataclass(frozen=True)
class Cached:
    cache: Path
    commit: str
    file: FileWork
    blob: Path
    snapshot: Path


@pytest.fixture
def cached(tmp_path: Path) -> Cached:
    data = random.Random(5).randbytes(SIZE)
    cache = tmp_path / "cache"
    commit = repos.publish(cache, REPO, {"model.safetensors": data})
    f = FileWork("model.safetensors", SIZE, hashlib.sha256(data).hexdigest())
    return Cached(
        cache,
        commit,
        f,
        layout.blob_path(cache, REPO, f.etag),
        layout.snapshot_path(cache, REPO, commit, f.path),
    )


def _verify_plan(c: Cached) -> Plan:
    action = Action(
        kind=ActionKind.VERIFY,
        model=MODEL,
        repo=REPO,
        revision="main",
        commit=c.commit,
        files=(c.file,),
        bytes=SIZE,
        reason=Reason.UNVERIFIED,
        message="present but unverified",
    )
    return Plan(actions=(action,), generation="g1", created_at=NOW)


def _workspace(c: Cached, store: StateStore, stop: StopSignal | None) -> CacheWorkspace:
    # The endpoint is never asked: verifying reads only the cache.
    return CacheWorkspace(
        cache_dir=str(c.cache), endpoint="http://127.0.0.1:9", store=store,
        clock=lambda: NOW, stop=stop,
    )


def test_a_stop_mid_hash_ends_the_pass_with_the_file_unverified(
    tmp_path: Path, cached: Cached
) -> None:
    signal = StopOnceRead(cached.blob, CHUNK_SIZE)
    with StateStore.open(tmp_path / "state") as store:
        stopped = apply_plan(
            _verify_plan(cached), _workspace(cached, store, signal), should_stop=signal.stopped
        )
        after_stop = store.verification(REPO, cached.file.etag)
        # The next pass, not stopped, verifies the very same file: it was left intact.
        again = apply_plan(_verify_plan(cached), _workspace(cached, store, None))
        after_again = store.verification(REPO, cached.file.etag)

    assert stopped.stopped == (MODEL,) and stopped.failures == {}
    assert max(signal.positions) == CHUNK_SIZE < SIZE  # one chunk read, then nothing more
    assert after_stop is None  # neither verified nor damaged
    assert cached.snapshot.resolve() == cached.blob.resolve()  # still linked, not quarantined
    assert not layout.quarantine_path(cached.cache, REPO, cached.file.etag).exists()
    assert again.ok and again.stopped == ()
    assert after_again is not None and after_again.ok and after_again.digest == cached.file.etag


def test_a_stopped_full_verify_keeps_the_earlier_record_as_it_was(
    tmp_path: Path, cached: Cached
) -> None:
    """``reconcile verify --full`` and the health check re-hash files already verified."""
    st = cached.blob.stat()
    earlier = Verification(
        blob=cached.file.etag, size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino,
        digest=cached.file.etag, ok=True, checked_at=datetime(2026, 11, 1, tzinfo=timezone.utc),
    )
    assessment = Assessment(
        model=DesiredModel(MODEL, REPO), commit=cached.commit, files=(cached.file,)
    )
    signal = StopOnceRead(cached.blob, CHUNK_SIZE)
    with StateStore.open(tmp_path / "state") as store:
        store.record_verification(REPO, earlier)
        with pytest.raises(Cancelled):
            verify(
                [assessment], cache_dir=cached.cache, store=store, clock=lambda: NOW,
                full=True, stop=lambda: signal.stopped(MODEL),
            )
        kept = store.verification(REPO, cached.file.etag)

    assert max(signal.positions) == CHUNK_SIZE < SIZE
    assert kept == earlier  # not re-dated as verified now, not turned into damage
    assert cached.snapshot.resolve() == cached.blob.resolve()

"""The partials of a blob on their own, over real files -- the stable one any later process
continues, and a writer's own: what opening one finds and keeps, what the sidecar says after
each step, what a write past the size, a restart, a hash of bytes that are not there, a publish
and a discard leave on disk, and the errors' reasons and words.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cache.hashing import HashKind, digest_bytes
from controller.domain import Reason
from controller.domain.units import human_bytes
from controller.hub import sidecar
from controller.hub.partial import Partial
from controller.hub.private_partial import PrivatePartial
from controller.hub.ranges import Span
from controller.hub.revisions import HubError
from controller.hub.sidecar import Sidecar
from controller.system.cancel import Cancelled, StopSignal

KIB = 1024
DATA = random.Random(61).randbytes(200 * KIB + 17)
SHA = hashlib.sha256(DATA).hexdigest()
BUFFER = memoryview(bytearray(16 * KIB))


def record(validator: str | None = None) -> Sidecar:
    return Sidecar("org/model", "model.safetensors", "c" * 40, SHA, len(DATA), validator)


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    folder = tmp_path / "blobs"
    folder.mkdir()
    return folder / SHA


def partial_file(blob: Path) -> Path:
    return blob.with_name(blob.name + ".incomplete")


def sidecar_file(blob: Path) -> Path:
    return blob.with_name(blob.name + ".incomplete.json")


def on_record(blob: Path) -> Sidecar | None:
    return sidecar.read(sidecar_file(blob))


def leave(blob: Path, data: bytes, **fields: object) -> None:
    """A partial and its sidecar, as a killed process leaves them."""
    partial_file(blob).write_bytes(data)
    document = {"version": 2, "etag": SHA, "size": len(DATA), **fields}
    sidecar_file(blob).write_text(json.dumps(document))


@pytest.fixture
def opened() -> Iterator[list[Partial]]:
    """Partials a test opened, closed at its end whatever happened."""
    partials: list[Partial] = []
    yield partials
    for partial in partials:
        partial.close()


# --------------------------------------------------------------------------- opening


def test_a_new_partial_is_empty_and_on_record_first(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == partial.resumed_from == 0
    assert partial_file(blob).stat().st_size == 0
    assert on_record(blob) == record()


def test_a_partial_of_another_blob_is_emptied(blob: Path, opened: list[Partial]) -> None:
    partial_file(blob).write_bytes(DATA[:KIB])
    sidecar_file(blob).write_text(json.dumps({"version": 2, "etag": "ab" * 32, "size": 9}))

    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == 0 and partial_file(blob).stat().st_size == 0
    assert on_record(blob) == record()


def test_a_prefix_is_kept_with_its_validator(blob: Path, opened: list[Partial]) -> None:
    leave(blob, DATA[: 100 * KIB], validator='"v0"')

    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == partial.resumed_from == 100 * KIB
    assert partial.validator == '"v0"'
    partial.write(DATA[100 * KIB :])
    assert partial.digest() == SHA


def test_a_partial_longer_than_its_blob_is_emptied(blob: Path, opened: list[Partial]) -> None:
    leave(blob, DATA + b"x")

    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == 0 and partial_file(blob).stat().st_size == 0


def test_a_partial_exactly_as_long_as_its_blob_is_whole(blob: Path, opened: list[Partial]) -> None:
    leave(blob, DATA)

    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == len(DATA) and partial.digest() == SHA


def test_a_ranged_partial_is_opened_in_order_from_its_prefix(
    blob: Path, opened: list[Partial]
) -> None:
    data = DATA[: 50 * KIB] + bytes(50 * KIB) + DATA[100 * KIB :]
    leave(blob, data, done=[[0, 50 * KIB], [100 * KIB, len(DATA)]])

    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == partial.resumed_from == 50 * KIB
    assert partial_file(blob).stat().st_size == 50 * KIB
    found = on_record(blob)
    assert found is not None and found.done is None  # a prefix now, as long as the file
    partial.write(DATA[50 * KIB :])
    assert partial.digest() == SHA


def test_a_partial_shorter_than_its_spans_keeps_what_it_holds(
    blob: Path, opened: list[Partial]
) -> None:
    leave(blob, DATA[: 30 * KIB], done=[[0, 80 * KIB]])

    partial = Partial.open(blob, record())
    opened.append(partial)

    assert partial.size == 30 * KIB
    partial.write(DATA[30 * KIB :])
    assert partial.digest() == SHA


def test_a_stop_while_the_prefix_is_hashed_keeps_the_bytes(blob: Path) -> None:
    leave(blob, DATA[: 100 * KIB])
    stop = StopSignal()
    stop.stop_all()

    with pytest.raises(Cancelled):
        Partial.open(blob, record(), stop.for_model("org/model"))

    assert partial_file(blob).read_bytes() == DATA[: 100 * KIB]


def test_a_new_ranged_partial_is_preallocated_with_no_spans(
    blob: Path, opened: list[Partial]
) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)

    assert partial.done == () and partial.resumed_from == 0
    assert partial_file(blob).stat().st_size == len(DATA)
    found = on_record(blob)
    assert found is not None and found.done == ()


def test_a_prefix_longer_than_its_blob_gives_ranges_only_the_blobs_bytes(
    blob: Path, opened: list[Partial]
) -> None:
    leave(blob, DATA + b"tail")

    partial = Partial.open_ranged(blob, record())
    opened.append(partial)

    assert partial.done == (Span(0, len(DATA)),) and partial.resumed_from == len(DATA)


def test_an_empty_prefix_gives_ranges_no_span(blob: Path, opened: list[Partial]) -> None:
    leave(blob, b"")

    partial = Partial.open_ranged(blob, record())
    opened.append(partial)

    assert partial.done == () and partial.resumed_from == 0


def test_a_link_at_the_partials_name_is_refused(blob: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    partial_file(blob).symlink_to(target)

    with pytest.raises(OSError):
        Partial.open(blob, record())

    assert target.read_bytes() == b"keep"


# --------------------------------------------------------------------------- the validator


@pytest.mark.parametrize(
    ("header", "kept"),
    [('"v1"', '"v1"'), ('  "v1" ', '"v1"'), ('W/"v1"', None), (None, None), ("", None)],
)
def test_only_a_strong_validator_is_kept(
    blob: Path, opened: list[Partial], header: str | None, kept: str | None
) -> None:
    partial = Partial.open(blob, record('"old"'))
    opened.append(partial)

    partial.remember_validator(header)

    assert partial.validator == kept
    found = on_record(blob)
    assert found is not None and found.validator == kept


def test_the_same_validator_leaves_the_sidecar_alone(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open(blob, record('"v1"'))
    opened.append(partial)
    before = sidecar_file(blob).stat().st_ino

    partial.remember_validator('"v1"')

    assert sidecar_file(blob).stat().st_ino == before  # not replaced


# --------------------------------------------------------------------------- writing


def test_bytes_past_the_size_discard_the_partial(blob: Path) -> None:
    partial = Partial.open(blob, record())
    partial.write(DATA[:KIB])

    with pytest.raises(HubError) as caught:
        partial.write(DATA[KIB:] + b"!")

    assert caught.value.reason is Reason.SIZE_MISMATCH and caught.value.transient is False
    assert caught.value.message == (
        f"model.safetensors: the hub sent more than the {len(DATA)} bytes it announced; "
        "the download was discarded"
    )
    assert not partial_file(blob).exists() and not sidecar_file(blob).exists()


def test_exactly_the_size_is_accepted(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open(blob, record())
    opened.append(partial)

    partial.write(DATA)

    assert partial.size == len(DATA) and partial.digest() == SHA


def test_a_write_the_file_system_refuses_is_final_and_names_the_file(
    blob: Path, opened: list[Partial]
) -> None:
    partial = Partial.open(blob, record())
    opened.append(partial)
    with pytest.raises(HubError) as caught, file_size_limit_of(64 * KIB):
        partial.write(DATA)

    assert caught.value.reason is Reason.DOWNLOAD_FAILED and caught.value.transient is False
    assert caught.value.message.startswith(
        f"model.safetensors: cannot write {partial_file(blob)}: File too large"
    )
    assert partial.size == 64 * KIB  # what reached the file, and was hashed
    assert partial_file(blob).stat().st_size == 64 * KIB


def test_a_ranged_partial_the_file_system_cannot_hold_is_refused_before_a_byte(
    blob: Path,
) -> None:
    with pytest.raises(HubError) as caught, file_size_limit_of(64 * KIB):
        Partial.open_ranged(blob, record())

    assert caught.value.reason is Reason.DOWNLOAD_FAILED and caught.value.transient is False
    assert f"cannot write {partial_file(blob)}" in caught.value.message


class file_size_limit_of:  # noqa: N801 - used as a context manager, like a function
    """Files this process writes may not grow past ``limit`` (EFBIG instead of a signal)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __enter__(self) -> None:
        self.soft, self.hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.hard))

    def __exit__(self, *exc: object) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.soft, self.hard))
        signal.signal(signal.SIGXFSZ, self.previous)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A blobs folder on a 128 KiB tmpfs: the only honest way to hit ENOSPC."""
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount / SHA
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_keeps_what_was_written_and_says_what_is_missing(tiny_disk: Path) -> None:
    partial = Partial.open(tiny_disk, record())
    try:
        with pytest.raises(HubError) as caught:
            partial.write(DATA)
        kept = partial.size
    finally:
        partial.close()

    assert 0 < kept < len(DATA) and partial_file(tiny_disk).read_bytes() == DATA[:kept]
    error = caught.value
    assert error.reason is Reason.DISK_FULL and error.transient is False
    missing = len(DATA) - kept
    assert error.message.startswith(
        f"model.safetensors: the disk is full: {human_bytes(missing)} ({missing} bytes) more "
        f"needed in {tiny_disk.parent}, "
    )
    assert error.message.endswith(
        f" free; the {human_bytes(kept)} downloaded so far are kept and the download resumes "
        "once there is room"
    )


def test_a_ranged_partial_too_large_for_the_disk_fails_before_a_byte(tiny_disk: Path) -> None:
    leave(tiny_disk, DATA[: 10 * KIB], path="model.safetensors")  # an earlier run's prefix

    with pytest.raises(HubError) as caught:
        Partial.open_ranged(tiny_disk, record())

    error = caught.value
    assert error.reason is Reason.DISK_FULL and error.transient is False
    missing = len(DATA) - 10 * KIB
    assert error.message.startswith(
        f"model.safetensors: the disk is full: {human_bytes(missing)} ({missing} bytes) more "
        f"needed in {tiny_disk.parent}, "
    )
    free = re.search(r", (\S+ \S+) free; the (\S+ \S+) downloaded so far", error.message)
    assert free is not None and free[2] == human_bytes(10 * KIB)
    assert free[1] != human_bytes(0)  # the tmpfs still has room, for less than the file


# --------------------------------------------------------------------------- restarting


def test_a_restart_forgets_every_byte_and_the_validator(blob: Path, opened: list[Partial]) -> None:
    leave(blob, DATA[: 50 * KIB], validator='"v0"')
    partial = Partial.open(blob, record())
    opened.append(partial)

    partial.restart()

    assert partial.size == partial.resumed_from == 0
    assert partial_file(blob).stat().st_size == 0
    found = on_record(blob)
    assert found is not None and found.validator is None and found.done is None
    partial.write(DATA)
    assert partial.digest() == SHA  # the hash started over too


def test_a_restart_with_nothing_to_forget_leaves_the_sidecar_alone(
    blob: Path, opened: list[Partial]
) -> None:
    partial = Partial.open(blob, record())
    opened.append(partial)
    partial.write(DATA[:KIB])
    before = sidecar_file(blob).stat().st_ino

    partial.restart()

    assert sidecar_file(blob).stat().st_ino == before
    assert partial_file(blob).stat().st_size == 0


def test_a_restart_of_a_ranged_partial_forgets_its_spans(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    partial.write_at(0, memoryview(DATA[:KIB]))
    partial.mark_done(Span(0, KIB))
    partial.hash_through(KIB, BUFFER)

    partial.restart()

    assert partial.done == () and partial.hashed == 0
    found = on_record(blob)
    assert found is not None and found.done is None


def test_a_restart_of_a_git_blob_hashes_it_afresh(blob: Path, opened: list[Partial]) -> None:
    # A git blob's id hashes a header naming the size: the new hasher must know it too.
    data = DATA[: 10 * KIB]
    etag = digest_bytes(data, HashKind.GIT_BLOB_SHA1)
    partial = Partial.open(blob.with_name(etag), Sidecar("r", "config.json", "c", etag, len(data)))
    opened.append(partial)
    partial.write(data[:KIB])

    partial.restart()
    partial.write(data)

    assert partial.digest() == etag


# --------------------------------------------------------------------------- byte ranges


def test_spans_written_are_put_on_record(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    partial.write_at(10 * KIB, memoryview(DATA[10 * KIB : 20 * KIB]))
    partial.mark_done(Span(10 * KIB, 20 * KIB))

    partial.save()

    found = on_record(blob)
    assert found is not None and found.done == (Span(10 * KIB, 20 * KIB),)
    assert partial_file(blob).read_bytes()[10 * KIB : 20 * KIB] == DATA[10 * KIB : 20 * KIB]


def test_a_ranged_write_the_file_system_refuses_is_final(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)

    with pytest.raises(HubError) as caught, file_size_limit_of(64 * KIB):
        partial.write_at(60 * KIB, memoryview(DATA[60 * KIB : 80 * KIB]))

    assert caught.value.reason is Reason.DOWNLOAD_FAILED and caught.value.transient is False
    assert caught.value.message == (
        f"model.safetensors: cannot write {partial_file(blob)}: File too large"
    )


def test_a_write_away_from_the_frontier_is_not_hashed_from_the_buffer(
    blob: Path, opened: list[Partial]
) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    chunk = memoryview(DATA[KIB : 2 * KIB])

    assert not partial.hash_written(KIB, chunk)
    assert partial.hashed == 0


def test_hashing_bytes_the_file_does_not_hold_fails_the_download(
    blob: Path, opened: list[Partial]
) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    os.truncate(partial_file(blob), 10 * KIB)  # another tool shortened it

    with pytest.raises(HubError) as caught:
        partial.hash_through(20 * KIB, BUFFER)

    assert caught.value.reason is Reason.DOWNLOAD_FAILED and caught.value.transient
    assert caught.value.message == (
        f"{partial_file(blob)} is shorter than the {20 * KIB} bytes written to it"
    )
    assert partial.hashed == 10 * KIB


def test_hashing_stops_exactly_at_the_end_of_the_prefix(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    partial.write_at(0, memoryview(DATA[: 10 * KIB]))  # the rest: preallocated, not written

    partial.hash_through(4 * KIB, BUFFER)
    partial.hash_through(10 * KIB, BUFFER)

    assert partial.hashed == 10 * KIB  # not a buffer's worth of unwritten bytes further
    partial.write_at(10 * KIB, memoryview(DATA[10 * KIB :]))
    partial.hash_through(len(DATA), BUFFER)
    assert partial.digest() == SHA


def test_a_stop_ends_the_hashing_between_reads(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    stop = StopSignal()
    stop.stop_all()

    with pytest.raises(Cancelled, match="^hashing stopped after 0 bytes$"):
        partial.hash_through(20 * KIB, BUFFER, stop.for_model("org/model"))


def test_hashing_up_to_where_it_stands_reads_nothing(blob: Path, opened: list[Partial]) -> None:
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    partial.write_at(0, memoryview(DATA))
    partial.hash_through(len(DATA), BUFFER)

    partial.hash_through(KIB, BUFFER)  # behind the hasher: nothing to do

    assert partial.hashed == len(DATA) and partial.digest() == SHA
    partial.ranges_complete()
    assert partial.size == len(DATA)


def test_falling_back_to_one_connection_keeps_only_the_prefix(
    blob: Path, opened: list[Partial]
) -> None:
    leave(blob, b"")
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    for start, end in [(0, 30 * KIB), (60 * KIB, 90 * KIB)]:
        partial.write_at(start, memoryview(DATA[start:end]))
        partial.mark_done(Span(start, end))

    partial.to_in_order()

    assert partial.size == 30 * KIB and partial.resumed_from == 0
    assert partial_file(blob).stat().st_size == 30 * KIB
    assert partial.done == ()
    partial.write(DATA[30 * KIB :])
    assert partial.digest() == SHA


def test_falling_back_keeps_the_resumed_count_within_the_prefix(
    blob: Path, opened: list[Partial]
) -> None:
    leave(
        blob,
        DATA[: 80 * KIB] + bytes(len(DATA) - 80 * KIB),
        done=[[0, 20 * KIB], [40 * KIB, 80 * KIB]],
    )
    partial = Partial.open_ranged(blob, record())
    opened.append(partial)
    assert partial.resumed_from == 60 * KIB

    partial.to_in_order()

    assert partial.resumed_from == 20 * KIB and partial.size == 20 * KIB


# --------------------------------------------------------------------------- the end


def test_publishing_moves_the_bytes_and_drops_the_sidecar(blob: Path) -> None:
    partial = Partial.open(blob, record())
    partial.write(DATA)

    partial.publish(blob)

    assert blob.read_bytes() == DATA
    assert not partial_file(blob).exists() and not sidecar_file(blob).exists()
    partial.close()  # closing again is harmless


def test_discarding_removes_the_bytes_and_the_sidecar(blob: Path) -> None:
    partial = Partial.open(blob, record())
    partial.write(DATA[:KIB])

    partial.discard()
    partial.discard()  # twice: nothing left to remove

    assert not partial_file(blob).exists() and not sidecar_file(blob).exists()
    assert not blob.exists()


# --------------------------------------------------------------------------- a writer's own partial

WHERE = "org/model@cccccccccccc:model.safetensors"


@pytest.fixture
def private(blob: Path) -> Iterator[PrivatePartial]:
    partial = PrivatePartial(blob, SHA, len(DATA), WHERE)
    yield partial
    partial.discard()


def test_a_private_partial_has_a_name_no_other_writer_takes(
    blob: Path, private: PrivatePartial
) -> None:
    other = PrivatePartial(blob, SHA, len(DATA), WHERE)
    try:
        names = {private.path.name, other.path.name}
        assert len(names) == 2
        assert all(re.fullmatch(rf"{SHA}\.[0-9a-f]{{8}}\.incomplete", n) for n in names)
    finally:
        other.discard()


def test_a_private_partial_is_hashed_and_published(blob: Path, private: PrivatePartial) -> None:
    private.write(memoryview(DATA[:KIB]))
    private.write(memoryview(DATA[KIB:]))

    assert private.size == len(DATA) and private.digest() == SHA
    private.publish(blob)
    assert blob.read_bytes() == DATA and not private.path.exists()


def test_a_private_partial_refuses_bytes_past_the_size(private: PrivatePartial) -> None:
    private.write(memoryview(DATA))

    with pytest.raises(HubError) as caught:
        private.write(memoryview(b"!"))

    assert caught.value.reason is Reason.SIZE_MISMATCH and caught.value.transient is False
    assert caught.value.message == (
        f"{WHERE}: the hub sent more than the {len(DATA)} bytes it announced; "
        "the download was discarded"
    )
    assert private.size == len(DATA)


@pytest.mark.parametrize(
    ("header", "kept"), [('"v1"', '"v1"'), (' "v1" ', '"v1"'), ('W/"v1"', None), (None, None)]
)
def test_a_private_partial_keeps_only_a_strong_validator(
    private: PrivatePartial, header: str | None, kept: str | None
) -> None:
    private.remember_validator(header)
    assert private.validator == kept


def test_a_private_partial_restarts_from_nothing(private: PrivatePartial) -> None:
    private.remember_validator('"v1"')
    private.write(memoryview(DATA[:KIB]))

    private.restart()

    assert private.size == 0 and private.validator is None
    assert private.path.stat().st_size == 0
    private.write(memoryview(DATA))
    assert private.digest() == SHA


def test_a_write_the_file_system_refuses_fails_the_private_partial(
    private: PrivatePartial,
) -> None:
    with pytest.raises(HubError) as caught, file_size_limit_of(64 * KIB):
        private.write(memoryview(DATA))

    assert caught.value.reason is Reason.DOWNLOAD_FAILED and caught.value.transient is False
    assert caught.value.message == f"{WHERE}: cannot write {private.path}: File too large"
    assert private.size == 64 * KIB


def test_a_discarded_private_partial_leaves_nothing(blob: Path) -> None:
    partial = PrivatePartial(blob, SHA, len(DATA), WHERE)
    partial.write(memoryview(DATA[:KIB]))

    partial.discard()
    partial.discard()

    assert list(blob.parent.iterdir()) == []

"""``blobs/<etag>.incomplete.json``: what a partial download is part of, and what it holds.

A partial is only ever continued when its sidecar names the blob it belongs to (etag, size).
A partial written by one connection grows in order, so its length is what it holds (``done``
is None).  One written as byte ranges over several connections is preallocated to the whole
size and filled out of order; its sidecar lists the spans already written (``done``), and a
process killed mid-download resumes exactly those that are not.

The first record of a partial, and any that changes what the partial is (its validator, its
layout), replaces the sidecar by a rename, synced.  Progress records, written every few MiB per
connection, are written in place instead (:class:`Records`): one ``pwrite`` into the first page
of the open sidecar, which a ``kill -9`` cannot tear (the kernel copies a write within one page
whole, or not at all), so the next process sees the old record or the new one -- the guarantee a
rename gives, without creating and renaming a file each time, which cost milliseconds per
record on a busy disk.  They are not fsynced: the bytes they describe are not synced either at
that moment, and a power loss that loses some of them, or tears a record, is caught where every
download is: a record that does not parse starts the partial over, and the sha256 before the
blob is published fails a partial whose bytes were lost (it is fetched once more from byte 0).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controller.hub.ranges import Span, Spans, merged
from controller.system.atomic import atomic_write_text, temp_name

SUFFIX = ".json"
VERSION = 2  # 2 added ``done``; a version 1 record describes a partial grown in order
_READABLE = (1, 2)


@dataclass(frozen=True)
class Sidecar:
    repo: str
    path: str
    commit: str
    etag: str
    size: int
    validator: str | None = None  # the GET's strong ETag, sent as If-Range on a resume
    done: Spans | None = None  # None: the partial is a prefix, as long as the file

    def describes(self, etag: str, size: int) -> bool:
        # The etag names the content, so a partial stays valid across commits sharing the
        # blob; the commit is for people looking at the cache.
        return self.etag == etag and self.size == size

    def with_done(self, done: Spans | None) -> Sidecar:
        return replace(self, done=done)

    def with_validator(self, validator: str | None) -> Sidecar:
        return replace(self, validator=validator)


def path_for(partial: Path) -> Path:
    return partial.with_name(partial.name + SUFFIX)


def read(path: Path) -> Sidecar | None:
    """The record at ``path``; None when it is missing, unreadable or not one of ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") not in _READABLE:
        return None
    try:
        return Sidecar(
            repo=str(data.get("repo", "")),
            path=str(data.get("path", "")),
            commit=str(data.get("commit", "")),
            etag=_text(data["etag"]),
            size=_count(data["size"]),
            validator=_text(data["validator"]) if data.get("validator") else None,
            done=_spans(data["done"]) if data.get("done") is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def write(path: Path, record: Sidecar, *, durable: bool) -> None:
    """Replace the sidecar by ``record``; ``durable`` syncs it (the first record of a
    partial: it must outlive the bytes written after it)."""
    text = json.dumps(_document(record), indent=1) + "\n"
    if durable:
        atomic_write_text(path, text)
        return
    tmp = temp_name(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# A progress record at most this long is written in place: within one page, a write is never
# torn by a kill.  A longer one (hundreds of spans) goes through a rename.
_IN_PLACE_AT_MOST = 4096


class Records:
    """The sidecar of one partial as its writer keeps it: replaced by a rename when what the
    partial is changes, rewritten in place as its progress grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._length = 0  # bytes in the file, which a shorter record pads with spaces

    def replace(self, record: Sidecar, *, durable: bool) -> None:
        self.close()  # the rename makes a new file: the open one is no longer the sidecar
        write(self.path, record, durable=durable)

    def progress(self, record: Sidecar) -> None:
        """Put ``record`` on file in place (see the module's docstring)."""
        if self._fd < 0:
            # O_NOFOLLOW: a link planted in blobs/ must not redirect the write.
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
            self._length = os.fstat(self._fd).st_size
        data = _encoded(record)
        # JSON allows trailing white space: a shorter record covers the longer one before it.
        data += b" " * (self._length - len(data))
        if len(data) > _IN_PLACE_AT_MOST:
            self.replace(record, durable=False)
            return
        os.pwrite(self._fd, data, 0)
        self._length = len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _encoded(record: Sidecar) -> bytes:
    return (json.dumps(_document(record), indent=1) + "\n").encode("utf-8")


def _document(record: Sidecar) -> dict[str, Any]:
    return {
        "version": VERSION,
        "repo": record.repo,
        "path": record.path,
        "commit": record.commit,
        "etag": record.etag,
        "size": record.size,
        "validator": record.validator,
        "done": None if record.done is None else [[s.start, s.end] for s in record.done],
    }


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("not a non-empty string")
    return value


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a byte count")
    return value


def _spans(value: object) -> Spans:
    if not isinstance(value, list):
        raise ValueError("not a list of spans")
    spans = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError("not a span")
        spans.append(Span(_count(item[0]), _count(item[1])))
    return merged(spans)

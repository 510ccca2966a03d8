"""Byte spans of one file: which parts are on disk, which are missing, how to split the rest.

A file fetched over several connections is written out of order, so what a partial holds is a
set of spans rather than a length.  These functions keep that set merged and sorted (a few
entries even for a file of tens of GB: neighbouring pieces merge as they complete), say how far
the contiguous prefix reaches (what can be hashed), and cut what is missing into pieces, one
GET each.  Values only: no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    """Bytes ``start`` up to, not including, ``end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"not a byte span: {self.start}-{self.end}")

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def header(self) -> str:
        """The ``Range`` header asking for exactly these bytes (its last byte is inclusive)."""
        return f"bytes={self.start}-{self.end - 1}"


Spans = tuple[Span, ...]


def merged(spans: Iterable[Span]) -> Spans:
    """The same bytes as sorted, disjoint, non-touching spans (empty spans dropped)."""
    out: list[Span] = []
    for span in sorted(s for s in spans if len(s)):
        if out and span.start <= out[-1].end:
            out[-1] = Span(out[-1].start, max(out[-1].end, span.end))
        else:
            out.append(span)
    return tuple(out)


def added(spans: Spans, span: Span) -> Spans:
    return merged((*spans, span))


def covered(spans: Spans) -> int:
    """How many bytes the (merged) spans hold."""
    return sum(len(s) for s in spans)


def prefix_end(spans: Spans) -> int:
    """Where the bytes held from offset 0 on first stop: all before it can be hashed."""
    first = spans[0] if spans else None
    return first.end if first is not None and first.start == 0 else 0


def missing(spans: Spans, size: int) -> Spans:
    """The spans of a ``size``-byte file that ``spans`` do not hold."""
    gaps: list[Span] = []
    at = 0
    for span in merged(spans):
        if span.start >= size:
            break
        if span.start > at:
            gaps.append(Span(at, span.start))
        at = max(at, span.end)
    if at < size:
        gaps.append(Span(at, size))
    return tuple(gaps)


def pieces(gaps: Spans, piece_size: int) -> Spans:
    """``gaps`` cut into pieces of at most ``piece_size`` bytes, in file order: the lowest
    offsets are fetched first, so the hashable prefix grows while the rest arrives."""
    if piece_size < 1:
        raise ValueError("a piece holds at least one byte")
    return tuple(
        Span(at, min(at + piece_size, gap.end))
        for gap in gaps
        for at in range(gap.start, gap.end, piece_size)
    )


def content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of ``bytes first-last/total``; None for parts absent or unknown."""
    if not value or not value.startswith("bytes "):
        return None, None, None
    span, _, total = value[len("bytes ") :].partition("/")
    first, _, last = span.partition("-")
    return _int(first), _int(last), _int(total)


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None

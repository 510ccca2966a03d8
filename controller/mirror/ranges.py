"""HTTP byte ranges (RFC 9110): what part of a file a ``Range`` header asks for."""

from __future__ import annotations

import re

_RANGE_RE = re.compile(r"(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """A well-formed range that starts past the end of the file (answered with 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_inclusive)`` for a single byte range, None to send the whole file.

    Malformed or multi-range headers are ignored, as RFC 9110 allows; a well-formed
    range that starts past the end raises :class:`Unsatisfiable`.
    """
    if header is None or not header.startswith("bytes=") or "," in header:
        return None
    match = _RANGE_RE.fullmatch(header[len("bytes=") :].strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last N bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable
        return max(size - int(last), 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, min(int(last), size - 1) if last else size - 1

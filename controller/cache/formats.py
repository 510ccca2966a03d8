"""Cheap structural checks of model files, read from their first bytes only.

A safetensors file is an 8-byte little-endian header length, a JSON header naming each
tensor's byte range, then the data.  The header alone tells how long the file must be, so
a truncated, extended or overwritten file is caught without hashing gigabytes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

# A header is a few kB to a few MB; anything claiming more is not a safetensors header.
MAX_HEADER_BYTES = 100 * 1024 * 1024


def safetensors_problem(path: Path, size: int) -> str | None:
    """Why ``path`` (``size`` bytes) is not a consistent safetensors file, or None."""
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return "shorter than a safetensors header"
            (length,) = struct.unpack("<Q", raw)
            if length > min(MAX_HEADER_BYTES, size - 8):
                return f"header length {length} does not fit the file"
            header = json.loads(f.read(length))
    except (OSError, ValueError) as e:
        return f"unreadable header: {e}"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    return _ranges_problem(header, size - 8 - length)


def _ranges_problem(header: dict[str, object], data_size: int) -> str | None:
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            return f"tensor {name!r} has no valid data_offsets"
        end = max(end, offsets[1])
    if end != data_size:
        return f"tensors end at byte {end} of a {data_size}-byte data section"
    return None

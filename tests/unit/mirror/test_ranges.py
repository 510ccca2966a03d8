"""``Range`` headers as RFC 9110 reads them, for a 100-byte file."""

from __future__ import annotations

import pytest

from controller.mirror.ranges import Unsatisfiable, parse_range


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-500", (90, 99)),  # clipped to the end
        ("bytes=-10", (90, 99)),  # the last ten bytes
        ("bytes=-500", (0, 99)),
        # Ignored, so the whole file is sent: malformed, several ranges, reversed, other units.
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=0-1,5-6", None),
        ("bytes=20-10", None),
        ("items=0-1", None),
    ],
)
def test_ranges(header: str | None, span: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == span


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0)]
)
def test_a_range_past_the_end_cannot_be_satisfied(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)

"""Human-readable quantities (decimal units, as download sizes are usually quoted), and
texts cut to the one line a table row or a log line has room for."""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, marked when more follows: a probe's output, say,
    must not break a table row or a log line (the whole text stays in the JSON views)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) <= 1:
        return text.strip()
    return f"{lines[0]} … (+{plural(len(lines) - 1, 'more line')})"

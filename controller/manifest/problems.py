"""What is wrong with a manifest, said the way compilers say it: ``file:line: path: message``.

Also the small wording shared by every message: where in a document (``spec.models[1].repo``),
how a value is shown (quoted, shortened, never a secret), how a type is named, and which
spelling was probably meant.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date

from controller.manifest.tokens import looks_like_token

# A place in a document: mapping keys and list indexes from the top, () for the whole document.
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, in the ``file:line: path: message`` form of compilers.

    ``line`` is 1-based, or 0 when the problem is about the path itself (missing, unreadable).
    ``path`` is the place in the document (``spec.models[1].repo``), ``(document)`` for the
    document as a whole, or ``-`` for the file system path.
    """

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ManifestError(Exception):
    """Invalid manifests; ``problems`` lists every problem found, in file and line order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_loc(loc: Loc) -> str:
    """``loc`` as people write it: ``spec.models[1].repo``, or ``(document)``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"


def show(value: object) -> str:
    """A value for a message: quoted, shortened, and never a secret."""
    text = str(value)
    if looks_like_token(text):
        return "'<redacted>'"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'" if isinstance(value, str) else text


def type_name(value: object) -> str:
    """The YAML-side name of a value's type: ``int``, ``str``, ``list``, ``mapping``, ``null``..."""
    if value is None:
        return "null"
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, date):
        return "date"
    return type(value).__name__


def _normalized_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def suggest(word: str, choices: list[str]) -> str | None:
    """The choice ``word`` was probably meant to be, for a did-you-mean; None when none is close."""
    # Style slips (maxUnusedDays, status_file) first, since difflib scores them poorly.
    for choice in choices:
        if _normalized_key(choice) == _normalized_key(word):
            return choice
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None

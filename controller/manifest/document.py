"""One manifest file as read: its plain data, where each part of it is, what is wrong with it.

Every later stage -- schema validation, the checks across files, merging -- reports through the
document, so that each problem carries the file and line people should look at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.manifest.problems import Loc, Problem, format_loc
from controller.manifest.schema import ModelSetManifest


@dataclass(frozen=True)
class Where:
    """The lines of one part of a document."""

    key_line: int | None  # line of the key, for a mapping entry
    value_line: int


@dataclass
class Document:
    """One file as read: its plain data, where each part of it is, and what is wrong with it."""

    file: str  # as shown in messages: the path given, joined with the file name
    base_dir: Path
    data: Any = None
    where: dict[Loc, Where] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    manifest: ModelSetManifest | None = None
    # Where the reader already reported a value it could not read (and left None): schema
    # errors there would only repeat the problem.
    unreadable: set[Loc] = field(default_factory=set)

    def report(self, line: int, loc: Loc | str, message: str) -> None:
        path = loc if isinstance(loc, str) else format_loc(loc)
        self.problems.append(Problem(self.file, line, path, message))

    def line(self, loc: Loc, at_key: bool = False) -> int:
        """The line of ``loc``; for a part that is absent, the line of what should hold it."""
        found = self.where.get(loc)
        if found is not None:
            return found.key_line if at_key and found.key_line is not None else found.value_line
        for end in range(len(loc) - 1, -1, -1):
            parent = self.where.get(loc[:end])
            if parent is not None:
                return parent.key_line or parent.value_line
        return 1

    def resolve_path(self, value: str) -> str:
        """A path written in this document, absolute: '~' expanded, relative to its directory."""
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(value)))

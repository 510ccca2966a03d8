"""Which files of a revision a model selects.

The semantics are huggingface_hub's ``allow_patterns``/``ignore_patterns`` (``fnmatchcase``,
where ``*`` also crosses ``/`` and a pattern ending in ``/`` selects a whole folder), so a
manifest's ``include`` means exactly what the same list means to ``snapshot_download``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase


def _normalize(pattern: str) -> str:
    pattern = pattern.replace("\\", "/")
    return pattern + "*" if pattern.endswith("/") else pattern


def selects(path: str, include: Iterable[str], exclude: Iterable[str]) -> bool:
    if include == () and exclude == ():
        return True  # most models select every file; a pass asks this of each cached file
    includes = [_normalize(p) for p in include]
    if includes and not any(fnmatchcase(path, p) for p in includes):
        return False
    return not any(fnmatchcase(path, _normalize(p)) for p in exclude)

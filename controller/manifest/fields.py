"""The checks of single values -- names, repo ids, revisions, globs, URLs, durations, rates --
as annotated types for the schema.

Each check returns the value or raises ValueError with the message users see.  ValueError
(rather than PydanticCustomError) because its text is not a format template, so values with
braces -- globs like "*.{json,txt}" -- are safe to echo.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from controller.manifest.problems import show
from controller.manifest.tokens import TOKEN_MESSAGE

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"

_NAME_RE = re.compile(NAME_PATTERN)
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_BANDWIDTH_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)/s$")
_BANDWIDTH_UNITS = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(
            f"invalid name {show(value)}: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", "\\", "~", "./")) or bool(_WINDOWS_DRIVE_RE.match(value))


def _check_repo(value: str) -> str:
    """huggingface_hub's ``validate_repo_id`` rules, stated so that users can act on them.

    The id becomes a cache directory name (``models--org--name``), so path-like forms are
    refused outright, and ``--`` is refused because it is the separator of that name.
    """
    shown = show(value)
    if _looks_like_path(value) or value in (".", ".."):
        raise ValueError(f"invalid repo id {shown}: expected a Hub repo id 'org/name', not a path")
    parts = value.split("/")
    if len(parts) > 2:
        raise ValueError(f"invalid repo id {shown}: expected 'org/name' with at most one '/'")
    if len(value) > 96:
        raise ValueError(f"invalid repo id {shown}: longer than 96 characters")
    for part in parts:
        _check_repo_part(part, shown)
    if "--" in value or ".." in value:
        raise ValueError(f"invalid repo id {shown}: '--' and '..' are not allowed")
    if value.endswith(".git"):
        raise ValueError(f"invalid repo id {shown}: cannot end with '.git'")
    return value


def _check_repo_part(part: str, shown: str) -> None:
    if not part or not _REPO_PART_RE.match(part):
        raise ValueError(
            f"invalid repo id {shown}: each part must be letters, digits, '-', '_' or '.'"
        )
    if part[0] in "-." or part[-1] in "-.":
        raise ValueError(f"invalid repo id {shown}: a part cannot start or end with '-' or '.'")


def _check_revision(value: str) -> str:
    # A revision becomes a path under refs/ in the cache and a URL segment: keep it inert there.
    shown = show(value)
    if not value:
        raise ValueError("revision must not be empty; use a branch, tag or commit such as 'main'")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"invalid revision {shown}: no whitespace or control characters allowed")
    if ".." in value or value.startswith("/") or "\\" in value:
        raise ValueError(f"invalid revision {shown}: '..', '\\' and a leading '/' are not allowed")
    return value


def _check_glob(value: str) -> str:
    # Patterns are matched against paths inside a repo; one that could only match outside it is
    # a mistake (or an attempt to escape the cache), so it is refused rather than ignored.
    if not value.strip():
        raise ValueError("patterns must not be empty")
    if value.startswith(("/", "\\")) or _WINDOWS_DRIVE_RE.match(value):
        raise ValueError(f"pattern {show(value)} is absolute; patterns are relative to the repo")
    if ".." in re.split(r"[/\\]", value):
        raise ValueError(f"pattern {show(value)} contains a '..' segment")
    return value


def _check_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _check_local_path(value: str) -> str:
    if not value.strip():
        raise ValueError("path must not be empty")
    if "\0" in value:
        raise ValueError("path must not contain NUL characters")
    return value


def _check_endpoint(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid endpoint {show(value)}: expected an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(TOKEN_MESSAGE)
    if parts.query or parts.fragment:
        raise ValueError(f"invalid endpoint {show(value)}: no query string or fragment")
    return value


def parse_duration(value: str) -> float:
    """Seconds in a duration such as '30s', '5m', '1.5h', '1d' or '250ms'."""
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise ValueError(
            f"invalid duration {show(value)}: expected a number and a unit like '30s', '5m' "
            f"(units: {', '.join(_DURATION_UNITS)})"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {show(value)}: must be more than 0")
    return seconds


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def parse_bandwidth(value: str) -> int:
    """Bytes per second in a rate such as '50MB/s' or '1.5MiB/s'."""
    match = _BANDWIDTH_RE.match(value.strip())
    if not match:
        raise ValueError(
            f"invalid bandwidth {show(value)}: expected a rate like '50MB/s' "
            f"(units: {', '.join(_BANDWIDTH_UNITS)})"
        )
    rate = int(float(match.group(1)) * _BANDWIDTH_UNITS[match.group(2)])
    if rate <= 0:
        raise ValueError(f"invalid bandwidth {show(value)}: must be more than 0")
    return rate


def _check_bandwidth(value: str) -> str:
    parse_bandwidth(value)
    return value


ModelName = Annotated[str, AfterValidator(_check_name)]
RepoId = Annotated[str, AfterValidator(_check_repo)]
Revision = Annotated[str, AfterValidator(_check_revision)]
Glob = Annotated[str, AfterValidator(_check_glob)]
Text = Annotated[str, AfterValidator(_check_text)]
LocalPath = Annotated[str, AfterValidator(_check_local_path)]
Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
Bandwidth = Annotated[str, AfterValidator(_check_bandwidth)]
Duration = Annotated[str, AfterValidator(_check_duration)]

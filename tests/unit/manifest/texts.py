"""Manifest texts for the tests of the manifest package, and the ways they are loaded.

Line numbers in the tests count from ``HEAD``: line 7 is the model entry, line 8 its repo, and
cases append their own lines from line 9 on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifest.loading import load_manifests
from controller.manifest.problems import ManifestError, Problem

HEAD = """\
apiVersion: modelsync/v1
kind: ModelSet
metadata:
  name: test
spec:
  models:
    - name: a
      repo: org/a
"""


def model(name: str, repo: str | None = None, extra: str = "") -> str:
    """A model entry (two lines, plus ``extra``) to append under ``spec.models``."""
    return f"    - name: {name}\n      repo: {repo or 'org/' + name}\n{extra}"


def manifest(name: str = "test", spec: str = "", models: str = "") -> str:
    body = f"{spec}  models:\n{models}" if models else spec
    return f"apiVersion: modelsync/v1\nkind: ModelSet\nmetadata:\n  name: {name}\nspec:\n{body}"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_manifests(path)
    return caught.value.problems


def find(problems: list[Problem], prefix: str, fragment: str) -> Problem:
    for problem in problems:
        if str(problem).startswith(prefix) and fragment in problem.message:
            return problem
    listing = "\n".join(str(p) for p in problems)
    raise AssertionError(f"no problem {prefix!r} ... {fragment!r} among:\n{listing}")


def assert_reported(directory: Path, text: str, line: int, path: str, fragment: str) -> None:
    """``text``, loaded as a manifest, is refused with ``fragment`` at ``line`` and ``path``."""
    file = write(directory, "m.yaml", text)
    problem = find(problems_of(file), f"{file}:{line}: {path}: ", fragment)
    assert str(problem) == f"{problem.file}:{problem.line}: {problem.path}: {problem.message}"

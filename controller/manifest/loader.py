"""Loading manifests: a file, or every manifest of a directory, checked and merged.

A manifest is one YAML document of kind ``ModelSet``; ``-f`` may also name a directory, whose
manifests are merged.  Loading either succeeds completely or raises :class:`ManifestError` with
*every* problem of *every* file, each as ``file:line: path: message`` -- a pull request should
show all of its mistakes in one CI run, not one per push.
"""

from __future__ import annotations

from pathlib import Path

from controller.manifest.consistency import check_consistency
from controller.manifest.manifest_set import ManifestSet, merge
from controller.manifest.problems import ManifestError, Problem
from controller.manifest.validation import validate
from controller.manifest.yaml_source import read_document


def load_manifests(path: str | Path) -> ManifestSet:
    """Load a manifest file, or every manifest of a directory, and merge them.

    Raises :class:`ManifestError` listing every problem of every file.
    """
    docs = [read_document(p, str(p)) for p in _manifest_paths(Path(path))]
    for doc in docs:
        if isinstance(doc.data, dict):
            validate(doc)
    check_consistency(docs)
    order = {doc.file: index for index, doc in enumerate(docs)}
    problems = sorted(
        (p for doc in docs for p in doc.problems), key=lambda p: (order[p.file], p.line)
    )
    if problems:
        raise ManifestError(problems)
    return merge(docs)


def _is_manifest_name(name: str) -> bool:
    # Lock files are written beside manifests; hidden files are editor droppings.
    if name.startswith(".") or name.endswith((".lock.yaml", ".lock.yml")):
        return False
    return name.endswith((".yaml", ".yml"))


def _manifest_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise ManifestError([Problem(str(path), 0, "-", "no such file or directory")])
    if not path.is_dir():
        return [path]
    try:
        entries = sorted(path.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        raise ManifestError([Problem(str(path), 0, "-", f"cannot list: {exc.strerror}")]) from None
    found = [p for p in entries if _is_manifest_name(p.name) and p.is_file()]
    if not found:
        message = "no manifests here: expected *.yaml or *.yml files (*.lock.yaml are lock files)"
        raise ManifestError([Problem(str(path), 0, "-", message)])
    return found

"""``reconcile --watch``: the long-running controller."""

from __future__ import annotations


def run(
    path: str, *, host: str | None, port: int | None, locked: bool, offline: bool = False
) -> int:
    from controller.runtime.process import run

    return run(path, host=host, port=port, locked=locked, offline=offline)

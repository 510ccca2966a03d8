"""Values the unit tests share: a fixed clock, commit ids, and a desired state around models."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from controller.domain import DesiredModel, DesiredState, RemoteFile

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
C1 = "1" * 40
C2 = "2" * 40
# A repo's files as the hub lists them: an LFS file (with its sha256) and two kept in git.
WEIGHTS = RemoteFile("model.safetensors", 1000, "b" * 40, sha256="a" * 64)
CONFIG = RemoteFile("config.json", 10, "c" * 40)
README = RemoteFile("README.md", 5, "d" * 40)


def desired(
    *models: DesiredModel, root: str | Path = "/", endpoint: str = "http://hub"
) -> DesiredState:
    """The desired state a manifest declaring ``models`` loads to, its directories under
    ``root`` (the default names no real directory: a pure planner never opens them)."""
    base = Path(root)
    return DesiredState(
        models=models,
        cache_dir=str(base / "cache"),
        state_dir=str(base / "state"),
        endpoint=endpoint,
        generation="g1",
        status_file=str(base / "state" / "status.yaml"),
    )

"""Shared test set-up.

huggingface_hub reads its environment once, at import, so the isolation below must
happen before any test module imports it: the real Hub is unreachable (a loopback
port nothing listens on), the user's home, token and cache are never touched, and
no telemetry is sent. In-process tests pass ``endpoint=hub.url`` explicitly.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HF_HOME = tempfile.mkdtemp(prefix="modelsync-test-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)

# The discard port: nothing listens, so a stray call is refused at once, never sent to
# huggingface.co (the agent-registry lookup uses HF_ENDPOINT even when endpoint= is passed).
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
# Whatever the developer's shell says: no real token, no offline mode, no redirected
# cache, and Xet left *enabled* so the tests prove the local hub never advertises it.
for _name in (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_HUB_DISABLE_XET",
):
    os.environ.pop(_name, None)

from tests.support.hub import LocalHub  # noqa: E402 - must come after the environment is fixed


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LocalHub]:
    """A running local hub over an empty cache directory; publish repos into it."""
    with LocalHub(tmp_path / "hub") as local_hub:
        yield local_hub


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """A fresh, empty client cache (pass as ``cache_dir=``)."""
    path = tmp_path / "client-cache"
    path.mkdir()
    return path


@pytest.fixture
def hf_home() -> Path:
    """The isolated HF_HOME every test shares (token, xet and agent-registry files go here)."""
    return Path(_HF_HOME)

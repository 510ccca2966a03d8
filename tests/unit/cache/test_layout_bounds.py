"""A name the cache derives a path from stays under the directory it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cache import layout


def test_a_name_reaching_a_sibling_that_shares_the_prefix_is_refused(tmp_path: Path) -> None:
    # ``blobs-x`` starts with ``blobs`` but is not under it.
    with pytest.raises(layout.UnsafePathError):
        layout.blob_path(tmp_path, "org/m", "../blobs-x")


def test_a_name_under_the_directory_is_accepted(tmp_path: Path) -> None:
    folder = layout.repo_folder(tmp_path, "org/m")
    assert layout.blob_path(tmp_path, "org/m", "ab" * 20) == folder / "blobs" / ("ab" * 20)

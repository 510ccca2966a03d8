"""The ``/resolve`` URL of a file is the one huggingface_hub builds: a mirror or a hub sees the
same request from modelsync as from ``hf_hub_download``."""

from __future__ import annotations

import pytest
from huggingface_hub import hf_hub_url

from controller.hub.transfer import FileRef, hf_url

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("path", "revision", "endpoint"),
    [
        ("config.json", COMMIT, "https://huggingface.co"),
        ("sub/dir/model-00001-of-00002.safetensors", COMMIT, "http://127.0.0.1:8080"),
        ("with space & plus+.bin", COMMIT, "https://hub.example.org/mirror"),
        ("unicodé/ファイル.txt", COMMIT, "https://huggingface.co"),
        ("hash#and?query%.json", COMMIT, "https://huggingface.co"),
        ("config.json", "refs/pr/3", "https://huggingface.co"),
        ("config.json", "v1.0 beta", "http://[::1]:9000"),
    ],
)
def test_the_url_is_huggingface_hubs(path: str, revision: str, endpoint: str) -> None:
    ref = FileRef("org/model-name.v2", path, revision)
    assert hf_url(ref, endpoint) == hf_hub_url(
        "org/model-name.v2", path, revision=revision, endpoint=endpoint
    )

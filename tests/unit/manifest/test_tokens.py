"""Tokens never belong in a manifest: a token key, a token-like value or credentials in the
endpoint are refused, and no message repeats the secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.manifest.loading import load_manifests
from controller.manifest.problems import ManifestError
from controller.manifest.tokens import TOKEN_MESSAGE
from tests.unit.manifest.texts import HEAD, assert_reported, write

SECRETS = [
    pytest.param(
        HEAD + "      token: hf_secret\n",
        9,
        "spec.models[0].token",
        TOKEN_MESSAGE,
        id="token-key",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  HF_TOKEN: x\n"),
        6,
        "spec.HF_TOKEN",
        TOKEN_MESSAGE,
        id="hf-token-key",
    ),
    pytest.param(
        HEAD + "      description: hf_" + "a1B2" * 9 + "\n",
        9,
        "spec.models[0].description",
        "looks like a Hugging Face token",
        id="token-value",
    ),
    pytest.param(
        HEAD.replace("spec:\n", "spec:\n  endpoint: https://user:pw@hub.example\n"),
        6,
        "spec.endpoint",
        TOKEN_MESSAGE,
        id="credentials-in-endpoint",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "fragment"), SECRETS)
def test_secrets_are_refused(
    tmp_path: Path, text: str, line: int, path: str, fragment: str
) -> None:
    assert_reported(tmp_path, text, line, path, fragment)


def test_no_message_repeats_a_secret(tmp_path: Path) -> None:
    secret = "hf_" + "Zq9" * 12
    text = HEAD + f"      token: {secret}\n      priority: {secret}\n"
    file = write(tmp_path, "m.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load_manifests(file)
    assert secret not in str(caught.value)

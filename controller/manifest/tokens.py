"""Tokens never belong in a manifest: manifests live in git.

A ``token`` key (or ``*_token``) anywhere, an endpoint URL carrying credentials, or a value that
looks like a Hugging Face token is rejected, and no message ever repeats the secret.
"""

from __future__ import annotations

import re

TOKEN_MESSAGE = "tokens do not belong in manifests; set HF_TOKEN or run `hf auth login`"

_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_SECRET_KEY_RE = re.compile(r"^(?:.*[_-])?token$", re.IGNORECASE)


def looks_like_token(text: str) -> bool:
    """Whether ``text`` holds something shaped like a Hugging Face access token."""
    return bool(_HF_TOKEN_RE.search(text))


def is_token_key(key: str) -> bool:
    """Whether a mapping key names a token (``token``, ``HF_TOKEN``, ``hub-token``)."""
    return bool(_SECRET_KEY_RE.match(key))

"""``reconcile serve``: a cache directory over the hub protocol; pull-through with an upstream."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from controller.system.exits import ExitCode


def run(
    directory: str,
    host: str,
    port: int,
    *,
    verbose: bool = False,
    upstream: str | None = None,
    max_bytes: int | None = None,
) -> int:
    """``verbose``: one line per request on stderr (``-v``).  ``upstream``: fill misses from
    that hub with the mirror's own token, ``HF_TOKEN``; ``max_bytes``: DIR's budget."""
    if not Path(directory).is_dir():
        print(f"{directory}: not a directory", file=sys.stderr)
        return ExitCode.ERROR
    if max_bytes is not None and upstream is None:
        print("error: --max-bytes goes with --upstream (only a mirror fills DIR)", file=sys.stderr)
        return ExitCode.ERROR
    if upstream is not None:
        problem = _check_upstream(upstream)
        if problem is not None:
            print(f"error: --upstream: {problem}", file=sys.stderr)
            return ExitCode.ERROR
        from controller.hub.revisions import configure

        configure(upstream)
    from controller.mirror.server import run

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None
    return run(
        directory,
        host,
        port,
        verbose=verbose,
        upstream=upstream,
        token=token,
        max_bytes=max_bytes,
    )


def _check_upstream(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http(s) URL, got {url!r}"
    if parts.username is not None or parts.password is not None:
        return "put no credentials in the URL; the mirror's token comes from HF_TOKEN"
    return None

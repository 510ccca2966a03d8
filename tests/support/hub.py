"""A local Hugging Face hub for tests: the mirror (``reconcile serve``) over a cache directory.

Tests publish repos with ``hub.publish(...)`` and point ``huggingface_hub`` at
``hub.url`` (always pass ``endpoint=hub.url``: the client reads ``HF_ENDPOINT`` only
at import). Faults and the request log come from the server (:mod:`tests.support.faults`)::

    def test_something(hub, hf_cache):
        commit = hub.publish("org/model", {"config.json": b"{}"})
        hub.faults.fail("*/resolve/*", status=500, times=2)
        ...
        assert [r.status for r in hub.requests_for("*/config.json")] == [500, 500, 200]
"""

from __future__ import annotations

import fnmatch
import json
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from controller.mirror.git_objects import LfsRule
from tests.support import repos
from tests.support.faults import FaultInjectingHubServer, Faults, RequestRecord


class LocalHub:
    """A seeded cache directory plus the server that serves it."""

    def __init__(self, root: Path, *, verbose: bool = False) -> None:
        self.cache_dir = Path(root)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.server = FaultInjectingHubServer(self.cache_dir, verbose=verbose)

    def __enter__(self) -> LocalHub:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def faults(self) -> Faults:
        return self.server.faults

    @property
    def requests(self) -> list[RequestRecord]:
        return self.server.requests

    def requests_for(self, path_glob: str, method: str | None = None) -> list[RequestRecord]:
        """Logged requests whose decoded path matches the glob (and method, if given)."""
        return [
            r
            for r in self.server.requests
            if fnmatch.fnmatchcase(r.path, path_glob) and method in (None, r.method)
        ]

    def wait_for_requests(
        self, path_glob: str, method: str | None = None, *, count: int = 1, deadline: float = 60.0
    ) -> list[RequestRecord]:
        """Poll until at least ``count`` matching requests are logged, and return them.

        A request is logged when its handler finishes, which for a held or dropped transfer
        is some time after the client gave up on it; ``requests`` waits for that only
        briefly, so wait for the very record before ``clear_requests()``, or it may land
        after the clear and be counted with the requests that follow.
        """
        end = time.monotonic() + deadline
        while len(found := self.requests_for(path_glob, method)) < count:
            what = f"{method} {path_glob}" if method else path_glob
            assert time.monotonic() < end, f"gave up waiting for {count} x {what} in the log"
            time.sleep(0.02)
        return found

    def clear_requests(self) -> None:
        # A client holds a whole response a moment before the server's handler logs it;
        # the server waits for such records before clearing, so none lands after the clear.
        self.server.clear_requests()

    # Publishing: thin wrappers so tests need no cache_dir argument.

    def publish(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        branch: str = "main",
        *,
        message: str = "",
        lfs: LfsRule | None = None,
        gated: bool = False,
    ) -> str:
        """``gated``: served only to tokens given to :meth:`accept_token`, as the Hub does."""
        if gated:
            self.server.gates.gate(repo_id)
        return repos.publish(
            self.cache_dir, repo_id, files, branch=branch, message=message, lfs=lfs
        )

    def accept_token(self, repo_id: str, token: str) -> None:
        """Let ``token`` read the gated repo ``repo_id``."""
        self.server.gates.accept(repo_id, token)

    def move_branch(self, repo_id: str, branch: str, commit: str) -> None:
        repos.move_branch(self.cache_dir, repo_id, branch, commit)

    def tag(self, repo_id: str, tag: str, commit: str) -> None:
        repos.tag(self.cache_dir, repo_id, tag, commit)

    def delete_branch(self, repo_id: str, branch: str) -> None:
        repos.delete_branch(self.cache_dir, repo_id, branch)

    def repo_dir(self, repo_id: str) -> Path:
        return repos.repo_folder(self.cache_dir, repo_id)

    def blob(self, repo_id: str, etag: str) -> Path:
        """The served blob file, e.g. to damage it in a test."""
        return self.repo_dir(repo_id) / "blobs" / etag


def safetensors_bytes(data: bytes, name: str = "weight") -> bytes:
    """A valid safetensors file holding ``data`` as one uint8 tensor."""
    header = json.dumps(
        {name: {"dtype": "U8", "shape": [len(data)], "data_offsets": [0, len(data)]}}
    ).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(header)) + header + data

"""``reconcile serve`` of a cache that ``reconcile --apply`` filled answers the real client's
calls as the hub it was filled from does: infos, trees, refs (a tag reported as a tag),
commits, paths-info, and ``hf download`` run as a command."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import HfApi, scan_cache_dir

from tests.support.cli import REPO_ROOT, Workdir
from tests.support.hub import LocalHub

REPO = "acme/mirrored"
FIRST = {
    "config.json": b'{"model_type": "tiny"}',
    "model.safetensors": bytes(range(256)) * 64,
    "tokenizer/vocab.txt": b"a\nb\n",
}
SECOND = {**FIRST, "model.safetensors": hashlib.sha256(b"two").digest() * 600}


@pytest.fixture
def upstream(hub: LocalHub) -> tuple[LocalHub, str, str]:
    tagged = hub.publish(REPO, FIRST, message="first")
    hub.tag(REPO, "v1.0", tagged)
    head = hub.publish(REPO, SECOND, message="second")
    return hub, tagged, head


@pytest.fixture
def mirror(tmp_path: Path, upstream: tuple[LocalHub, str, str]) -> Iterator[str]:
    hub = upstream[0]
    work = Workdir(tmp_path / "node", hub.url)
    work.write_manifest(
        [
            {"name": "tagged", "repo": REPO, "revision": "v1.0"},
            {"name": "head", "repo": REPO, "revision": "main"},
        ]
    )
    applied = work.reconcile("--apply")
    assert applied.code == 0, applied.err
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"}
    command = [sys.executable, "-m", "controller", "serve", str(work.cache), "--port", "0"]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline().strip()
        assert " at http://" in banner, banner
        yield banner.rsplit(" ", 1)[1]
    finally:
        server.terminate()
        server.wait(timeout=10)


def _files(info: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (s.rfilename, s.size, s.blob_id, s.lfs.sha256 if s.lfs else None) for s in info.siblings
    )


def test_the_filled_cache_answers_as_its_hub(
    upstream: tuple[LocalHub, str, str], mirror: str, tmp_path: Path
) -> None:
    hub, tagged, head = upstream
    ours, theirs = HfApi(endpoint=mirror), HfApi(endpoint=hub.url)

    for revision, commit in (("v1.0", tagged), ("main", head)):
        mine = ours.model_info(REPO, revision=revision, files_metadata=True)
        hubs = theirs.model_info(REPO, revision=revision, files_metadata=True)
        assert mine.sha == hubs.sha == commit
        assert _files(mine) == _files(hubs)

        def tree(api: HfApi, at: str = revision) -> list[tuple[Any, ...]]:
            entries = api.list_repo_tree(REPO, revision=at, recursive=True)
            return sorted((e.path, type(e).__name__, getattr(e, "size", 0)) for e in entries)

        assert tree(ours) == tree(theirs)
        paths = ["config.json", "tokenizer", "missing.bin"]
        mine_paths = ours.get_paths_info(REPO, paths, revision=revision)
        hubs_paths = theirs.get_paths_info(REPO, paths, revision=revision)
        assert [(p.path, type(p).__name__) for p in mine_paths] == [
            (p.path, type(p).__name__) for p in hubs_paths
        ]

    mine_refs, hubs_refs = ours.list_repo_refs(REPO), theirs.list_repo_refs(REPO)
    assert [(t.name, t.ref, t.target_commit) for t in mine_refs.tags] == [
        ("v1.0", "refs/tags/v1.0", tagged)
    ]
    assert [(b.name, b.target_commit) for b in mine_refs.branches] == [("main", head)]
    assert mine_refs.tags == hubs_refs.tags and mine_refs.branches == hubs_refs.branches

    # A cache knows the commits it holds (not their parents): the revision's own first.
    for revision, commit in (("main", head), ("v1.0", tagged)):
        mine_log = [c.commit_id for c in ours.list_repo_commits(REPO, revision=revision)]
        hubs_log = [c.commit_id for c in theirs.list_repo_commits(REPO, revision=revision)]
        assert mine_log[0] == hubs_log[0] == commit
        assert sorted(mine_log) == sorted([head, tagged])

    out = tmp_path / "downloaded"
    env = {**os.environ, "HF_ENDPOINT": mirror, "HF_HUB_DISABLE_XET": "1"}
    hf = Path(sys.executable).parent / "hf"
    done = subprocess.run(
        [str(hf), "download", REPO, "--revision", "v1.0", "--cache-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    snapshot = out / "models--acme--mirrored" / "snapshots" / tagged
    assert str(snapshot) in done.stdout
    assert {p: (snapshot / p).read_bytes() for p in FIRST} == FIRST


def test_the_tags_record_leaves_the_cache_scanner_content(
    upstream: tuple[LocalHub, str, str], mirror: str, tmp_path: Path
) -> None:
    cache = tmp_path / "node" / "cache"
    assert (cache / "models--acme--mirrored" / ".modelsync-tags").is_file()
    scanned = scan_cache_dir(cache)
    assert scanned.warnings == []
    assert [r.repo_id for r in scanned.repos] == [REPO]
    refs = {ref for r in scanned.repos for rev in r.revisions for ref in rev.refs}
    assert refs == {"main", "v1.0"}

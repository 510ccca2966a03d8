"""What the CLI says when a user trips: refused at once with a message, and advice to act on."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Workdir, reconcile
from tests.support.hub import LocalHub

CONFIG = b'{"model_type": "tiny"}'


def _work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", {"config.json": CONFIG})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{"name": "tiny", "repo": "org/tiny"}])
    return work


def test_a_lease_of_zero_seconds_is_refused_before_anything_runs(
    tmp_path: Path, hub: LocalHub
) -> None:
    work = _work(tmp_path, hub)
    ran = tmp_path / "ran"

    manifests = str(work.manifests)  # before `--`: what follows is the command's
    run = reconcile(
        "lease", "tiny", "-f", manifests, "--ttl", "0", "--", "touch", str(ran),
        endpoint=hub.url,
    )

    assert run.code == 1, run.out + run.err
    assert "Traceback" not in run.err
    assert "--ttl: must be more than 0 seconds, got 0" in run.err
    assert not ran.exists() and not work.state.exists()


def test_offline_without_a_remembered_answer_says_what_would_get_one(
    tmp_path: Path, hub: LocalHub
) -> None:
    work = _work(tmp_path, hub)

    run = work.reconcile("--plan", "--offline")

    assert hub.requests == []
    said = run.out + run.err
    assert f"the hub ({hub.url}) was not asked" in said, said
    assert "run once without --offline" in said

"""The hub's remembered answer: one value, kept current by everything that learns where a
revision points, so that no view disagrees and no offline pass moves a model backwards."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import snapshot_download

from tests.support.cli import Run, Workdir
from tests.support.hub import LocalHub

FILES_A = {"config.json": b'{"v": 1}', "model.safetensors": b"\x01" * 40_000}
FILES_B = {"config.json": b'{"v": 2}', "model.safetensors": b"\x02" * 40_000}
TINY = {"name": "tiny", "repo": "org/tiny", "include": ["*.json", "*.safetensors"]}


def ok(run: Run, code: int = 0) -> Run:
    assert run.code == code, run.out + run.err
    return run


def served(work: Workdir) -> str:
    return (work.cache / "models--org--tiny" / "refs" / "main").read_text().strip()


def test_a_locked_upgrade_is_remembered_and_an_offline_apply_never_moves_the_model_back(
    tmp_path: Path, hub: LocalHub
) -> None:
    commit_a = hub.publish("org/tiny", FILES_A)
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([TINY])
    ok(work.reconcile("--apply"))  # the hub said main -> A, and that is remembered
    ok(work.reconcile("lock"))
    commit_b = hub.publish("org/tiny", FILES_B)
    ok(work.reconcile("lock", "--upgrade", "tiny"))
    ok(work.reconcile("--apply"))  # from the lock: the cache moves to B
    assert served(work) == commit_b

    # Every view of the model reads the same answer: at B, nothing newer known.
    ok(work.reconcile("verify"))
    status = work.model_status("tiny")
    assert (status["commit"], status["update_available"]) == (commit_b, False)
    request = ok(work.reconcile("request", "tiny", "--json")).json()
    assert request["success"] and "update available" not in request["message"]
    paused = ok(work.reconcile("pause", "tiny", "--json")).json()
    assert paused["commit"] == commit_b and not paused["update_available"]
    ok(work.reconcile("resume", "tiny"))

    # Without the lock, an offline apply of an auto-updating model has nothing to move to.
    (work.manifests / "models.lock.yaml").unlink()
    work.write_manifest([{**TINY, "updates": "auto"}])
    plan = ok(work.reconcile("--plan", "--offline", "--json")).json()
    assert plan["actions"] == []
    ok(work.reconcile("--apply", "--offline"))
    assert served(work) == commit_b != commit_a
    status = work.model_status("tiny")
    assert (status["commit"], status["update_available"]) == (commit_b, False)


def test_an_offline_plan_does_not_follow_an_answer_older_than_the_cache(
    tmp_path: Path, hub: LocalHub
) -> None:
    # Another tool (or a lock applied elsewhere) moved the cache after the hub's last
    # remembered answer: that answer is older news than the cache, and is not followed.
    commit_a = hub.publish("org/tiny", FILES_A)
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{**TINY, "updates": "auto"}])
    ok(work.reconcile("--apply"))
    commit_b = hub.publish("org/tiny", FILES_B)
    snapshot_download("org/tiny", cache_dir=work.cache, endpoint=hub.url)
    hub.server.stop()
    assert served(work) == commit_b

    plan = ok(work.reconcile("--plan", "--offline", "--json")).json()
    assert [a["kind"] for a in plan["actions"]] in ([], ["verify"])
    ok(work.reconcile("--apply", "--offline"))
    assert served(work) == commit_b != commit_a
    assert not work.model_status("tiny")["update_available"]


def test_what_lock_upgrade_learned_is_what_request_reports_with_the_hub_down(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish("org/tiny", FILES_A)
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([TINY])  # updates: notify, the default
    ok(work.reconcile("--apply"))
    commit_b = hub.publish("org/tiny", FILES_B)
    ok(work.reconcile("lock", "--upgrade"))
    hub.server.stop()

    request = ok(work.reconcile("request", "tiny", "--json")).json()
    assert f"update available: {commit_b[:12]}" in request["message"]

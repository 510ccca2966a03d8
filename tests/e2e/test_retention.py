"""Retention end to end: the real CLI, a real hub over HTTP, a real cache and SQLite.

Budgets are given with ``--budget-bytes`` so that "over budget" never depends on how full the
test machine's disk is.  After every deletion the cache must still be one that
huggingface_hub's own ``scan_cache_dir`` (what ``hf cache ls`` shows) reads without warnings.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from controller.store import StateStore, leases
from reconcilers.retention import OLD_REVISION_GRACE
from tests.support import deletion_halt
from tests.support.cli import DEADLINE_S, REPO_ROOT, Run, Workdir, wait_until
from tests.support.hub import LocalHub

CONFIG = b'{"model_type": "tiny"}'


def weights(seed: int, size: int = 300_000) -> bytes:
    return bytes((seed + i) % 251 for i in range(size))


def files(seed: int) -> dict[str, bytes]:
    return {"config.json": CONFIG + bytes([seed]), "model.safetensors": weights(seed)}


def size_of(seed: int) -> int:
    return sum(len(v) for v in files(seed).values())


A, B, C = 1, 2, 3  # the seeds of org/a, org/b, org/c


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    for name, seed in (("a", A), ("b", B), ("c", C)):
        hub.publish(f"org/{name}", files(seed))
    return Workdir(tmp_path / "work", hub.url)


def ok(run: Run, code: int = 0) -> Run:
    assert run.code == code, run.out + run.err
    return run


def repo_dir(work: Workdir, name: str) -> Path:
    return work.cache / f"models--org--{name}"


SEEDS = {"a": A, "b": B, "c": C}


def loads(work: Workdir, name: str) -> bool:
    """What an application does: resolve the model from the cache, no network.

    True only when every file resolves to the bytes the hub published; False only when
    huggingface_hub reports the model absent from the cache.  Any other error (a broken
    link, a damaged cache) is raised, so "evicted" never passes on an unrelated failure.
    """
    expected = files(SEEDS[name])
    try:
        found = {
            path: Path(
                hf_hub_download(f"org/{name}", path, cache_dir=work.cache, local_files_only=True)
            ).read_bytes()
            for path in expected
        }
    except LocalEntryNotFoundError:
        return False
    assert found == expected, f"org/{name} resolves to other bytes than the hub published"
    return True


def assert_cache_is_valid(work: Workdir) -> None:
    scanned = scan_cache_dir(work.cache)
    assert scanned.warnings == [], scanned.warnings


def plan(work: Workdir, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = ok(work.reconcile("--plan", "--json", *args)).json()
    return data


def converged(work: Workdir, *args: str) -> None:
    """A second plan right after an apply has nothing to do."""
    again = work.reconcile("--plan", "--detailed-exitcode", *args)
    assert again.code == 0, again.out + again.err


def test_a_model_removed_from_the_manifest_is_deleted_and_its_bytes_freed(work: Workdir) -> None:
    work.write_manifest([{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b"}])
    ok(work.reconcile("--apply"))
    work.write_manifest([{"name": "a", "repo": "org/a"}])

    shown = plan(work)
    assert [(a["kind"], a["model"], a["reason"], a["bytes"]) for a in shown["actions"]] == [
        ("delete", "b", "RemovedFromManifest", size_of(B))
    ]
    assert shown["totals"]["freed_bytes"] == size_of(B)
    text = ok(work.reconcile("--plan")).out
    assert "- delete   b  2 files, 300.0 kB  (RemovedFromManifest)" in text
    assert "Plan: 0 to download, 0 to update, 0 to repair, 0 to verify, 1 to delete." in text

    run = ok(work.reconcile("--apply"))
    assert "ok     delete b: 2 files, 300.0 kB freed" in run.out
    assert not repo_dir(work, "b").exists()
    assert loads(work, "a")
    assert_cache_is_valid(work)
    converged(work)


def test_an_unmanaged_model_in_the_same_cache_survives_every_apply(
    work: Workdir, hub: LocalHub
) -> None:
    # Another tool's download, first left alone, then declared (verified, used, never owned),
    # then removed from the manifest again: it is still not modelsync's to delete.
    snapshot = Path(snapshot_download("org/c", cache_dir=work.cache, endpoint=hub.url))
    work.write_manifest([{"name": "a", "repo": "org/a"}])
    ok(work.reconcile("--apply"))
    shown = plan(work)
    assert shown["unmanaged"] == [
        {"repo": "org/c", "bytes": size_of(C), "commits": [snapshot.name]}
    ]
    assert "Not modelsync's (other tools' files; never deleted):" in work.reconcile("--plan").out
    assert work.status()["retention"]["unmanaged"][0]["repo"] == "org/c"

    work.write_manifest([{"name": "a", "repo": "org/a"}, {"name": "c", "repo": "org/c"}])
    ok(work.reconcile("--apply"))
    assert work.model_status("c")["phase"] == "AVAILABLE"
    work.write_manifest([{"name": "a", "repo": "org/a"}])
    for _ in range(2):
        ok(work.reconcile("--apply"))
        assert loads(work, "c")
    converged(work)


def test_adopting_makes_another_tools_model_modelsyncs_to_delete(
    work: Workdir, hub: LocalHub
) -> None:
    snapshot_download("org/c", cache_dir=work.cache, endpoint=hub.url)
    work.write_manifest([{"name": "c", "repo": "org/c"}])
    ok(work.reconcile("--apply"))
    adopted = ok(work.reconcile("adopt", "c"))
    assert "c: 2 files of org/c@" in adopted.out and "2 newly adopted" in adopted.out

    work.write_manifest([{"name": "a", "repo": "org/a"}])
    ok(work.reconcile("--apply"))
    assert not repo_dir(work, "c").exists()
    assert_cache_is_valid(work)


def test_another_tools_file_in_an_owned_snapshot_survives_its_deletion(
    work: Workdir, hub: LocalHub
) -> None:
    # modelsync owns config.json only; an application then fetched the weights of the same
    # commit with huggingface_hub, into the same snapshot.  Deleting modelsync's model takes
    # only modelsync's file: the weights, their blob and the ref naming the snapshot stay.
    work.write_manifest([{"name": "a", "repo": "org/a", "include": ["config.json"]}])
    ok(work.reconcile("--apply"))
    commit = work.model_status("a")["commit"]
    weights_path = Path(
        hf_hub_download(
            "org/a", "model.safetensors", revision=commit, cache_dir=work.cache, endpoint=hub.url
        )
    )
    assert weights_path.parent.name == commit

    work.write_manifest([{"name": "b", "repo": "org/b"}])
    deletions = [a for a in plan(work)["actions"] if a["kind"] == "delete"]
    assert [(a["model"], [f["path"] for f in a["files"]]) for a in deletions] == [
        ("a", ["config.json"])
    ]
    ok(work.reconcile("--apply"))

    snapshot = repo_dir(work, "a") / "snapshots" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == ["model.safetensors"]
    assert weights_path.read_bytes() == files(A)["model.safetensors"]
    assert (repo_dir(work, "a") / "refs" / "main").read_text() == commit
    loaded = hf_hub_download(
        "org/a", "model.safetensors", cache_dir=work.cache, local_files_only=True
    )
    assert Path(loaded).read_bytes() == files(A)["model.safetensors"]
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download("org/a", "config.json", cache_dir=work.cache, local_files_only=True)
    assert_cache_is_valid(work)
    converged(work)


def test_adopt_true_in_the_manifest_outlives_the_manifest_entry(
    work: Workdir, hub: LocalHub
) -> None:
    snapshot_download("org/c", cache_dir=work.cache, endpoint=hub.url)
    work.write_manifest([{"name": "c", "repo": "org/c", "adopt": True}])
    ok(work.reconcile("--apply"))  # verifies it, and records the adoption
    work.write_manifest([{"name": "a", "repo": "org/a"}])
    assert [(a["model"], a["reason"]) for a in plan(work)["actions"]] == [
        ("a", "Missing"),
        ("c", "RemovedFromManifest"),
    ]
    ok(work.reconcile("--apply"))
    assert not repo_dir(work, "c").exists() and loads(work, "a")
    converged(work)


def test_recommend_mode_shows_deletions_and_never_applies_them(work: Workdir) -> None:
    work.write_manifest([{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b"}])
    ok(work.reconcile("--apply"))
    work.write_manifest([{"name": "a", "repo": "org/a"}], retention={"mode": "recommend"})

    shown = plan(work)
    assert shown["actions"] == [] and shown["changes_pending"] is False
    assert [(w["model"], w["reason"], w["withheld_because"]) for w in shown["withheld"]] == [
        ("b", "RemovedFromManifest", "RecommendOnly")
    ]
    text = ok(work.reconcile("--plan", "--detailed-exitcode")).out
    assert "Recommended deletions (retention.mode is recommend, so none is applied;" in text

    for _ in range(2):
        ok(work.reconcile("--apply"))
        assert loads(work, "b")
    (recommended,) = work.status()["retention"]["deletions"]
    assert (recommended["model"], recommended["state"]) == ("b", "recommended")
    assert recommended["bytes"] == size_of(B)


def lease_in_another_process(work: Workdir, model: str, release: Path) -> subprocess.Popen[bytes]:
    """``reconcile lease MODEL -- python ...``: the command waits until ``release`` exists."""
    waiter = (
        "import os, sys, time\n"
        f"end = time.monotonic() + {DEADLINE_S}\n"
        f"while not os.path.exists({str(release)!r}) and time.monotonic() < end:\n"
        "    time.sleep(0.02)\n"
    )
    command = [sys.executable, "-m", "controller", "lease", model, "-f", str(work.manifests)]
    return subprocess.Popen(
        [*command, "--", sys.executable, "-c", waiter],
        env={**os.environ, "HF_ENDPOINT": work.endpoint, "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        start_new_session=True,  # its own process group: a kill takes the command too
    )


def live_leases(work: Workdir) -> list[str]:
    reader = StateStore.open_readonly(work.state)
    if reader is None:
        return []
    with reader:
        now = datetime.now(timezone.utc)
        return [lease.model for lease in reader.leases() if leases.is_live(lease, now)]


def test_a_leased_model_survives_an_over_budget_apply(work: Workdir, tmp_path: Path) -> None:
    work.write_manifest(
        [
            {"name": "a", "repo": "org/a", "priority": "critical"},
            {"name": "b", "repo": "org/b", "policy": "on-demand"},
        ],
        retention={"preserve_recently_downloaded": False},
    )
    ok(work.reconcile("request", "b"), 2)
    ok(work.reconcile("--apply"))
    assert loads(work, "b")
    budget = str(size_of(A))

    release = tmp_path / "release"
    holder = lease_in_another_process(work, "b", release)
    try:
        wait_until(lambda: live_leases(work) == ["b"], "the lease")
        run = ok(work.reconcile("--apply", "--budget-bytes", budget), 1)
        assert "Held back (nothing in use is deleted or switched, nor an old revision" in run.out
        assert f"in use (pid {holder.pid} on " in run.out
        assert "not even after every allowed eviction (a (policy always); b (in use" in run.out
        assert loads(work, "b")
        assert work.model_status("b")["in_use"] is True
    finally:
        release.touch()
        assert holder.wait(timeout=DEADLINE_S) == 0

    run = ok(work.reconcile("--apply", "--budget-bytes", budget))
    assert "delete b: 2 files, 300.0 kB freed" in run.out
    assert not loads(work, "b") and loads(work, "a")
    status = work.model_status("b")
    assert (status["phase"], status["reason"]) == ("MISSING", "Evicted")
    assert_cache_is_valid(work)
    converged(work, "--budget-bytes", budget)  # evicted: not downloaded again...
    ok(work.reconcile("request", "b"), 2)  # ...until it is requested
    assert [a["kind"] for a in plan(work)["actions"]] == ["download"]


def test_a_lease_that_dies_with_its_process_holds_nothing(work: Workdir, tmp_path: Path) -> None:
    work.write_manifest([{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b"}])
    ok(work.reconcile("--apply"))
    holder = lease_in_another_process(work, "b", tmp_path / "never")
    wait_until(lambda: live_leases(work) == ["b"], "the lease")
    assert holder.poll() is None
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    work.write_manifest([{"name": "a", "repo": "org/a"}])
    ok(work.reconcile("--apply"))
    assert not repo_dir(work, "b").exists()


def test_a_shared_blob_survives_deleting_one_of_its_two_revisions(
    work: Workdir, hub: LocalHub
) -> None:
    work.write_manifest([{"name": "a", "repo": "org/a", "updates": "auto"}])
    ok(work.reconcile("--apply"))
    old = work.model_status("a")["commit"]
    new_weights = weights(99)
    new = hub.publish("org/a", {**files(A), "model.safetensors": new_weights})

    shown = plan(work)
    assert [(a["kind"], a["commit"], a["bytes"]) for a in shown["actions"]] == [
        ("update", new, len(new_weights)),
    ]
    # Held back until the grace period after the switch has passed.
    assert [(w["kind"], w["commit"], w["bytes"]) for w in shown["withheld"]] == [
        ("delete", old, len(weights(A))),  # config.json's blob is the new revision's too
    ]
    ok(work.reconcile("--apply"))
    (repo,) = scan_cache_dir(work.cache).repos
    assert sorted(r.commit_hash for r in repo.revisions) == sorted([old, new])
    assert_cache_is_valid(work)
    converged(work)

    ref = repo_dir(work, "a") / "refs" / "main"
    switched = ref.stat().st_mtime
    os.utime(ref, (switched - OLD_REVISION_GRACE.total_seconds(),) * 2)
    assert [(a["kind"], a["reason"], a["commit"]) for a in plan(work)["actions"]] == [
        ("delete", "OldRevision", old)
    ]
    ok(work.reconcile("--apply"))
    (repo,) = scan_cache_dir(work.cache).repos
    assert [r.commit_hash for r in repo.revisions] == [new]
    assert not (repo_dir(work, "a") / "snapshots" / old).exists()
    config = Path(
        hf_hub_download("org/a", "config.json", cache_dir=work.cache, local_files_only=True)
    )
    assert config.read_bytes() == files(A)["config.json"]  # the shared blob is still there
    assert len(os.listdir(repo_dir(work, "a") / "blobs")) == 2  # config + the new weights
    assert_cache_is_valid(work)
    converged(work)


def test_an_impossible_budget_fails_the_plan_with_the_numbers(work: Workdir) -> None:
    work.write_manifest([{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b"}])
    ok(work.reconcile("--apply"))
    total = size_of(A) + size_of(B)
    run = ok(work.reconcile("--plan", "--detailed-exitcode", "--budget-bytes", "400000"), 1)
    assert (
        f"Error: the plan does not fit the disk budget: 600.0 kB ({total} bytes) on disk + "
        f"0 B (0 bytes) to transfer = 600.0 kB ({total} bytes), 200.0 kB ({total - 400000} "
        "bytes) more than the budget of 400.0 kB (400000 bytes) (--budget-bytes 400000); not "
        "even after every allowed eviction (a (policy always); b (policy always))"
    ) in run.out
    fits = work.reconcile("--plan", "--detailed-exitcode", "--budget-bytes", str(total))
    assert fits.code == 0, fits.out + fits.err


def test_an_unused_on_demand_model_is_evicted_once_and_not_fetched_again(work: Workdir) -> None:
    work.write_manifest(
        [{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b", "policy": "on-demand"}],
        retention={"max_unused_days": 0, "preserve_recently_downloaded": False},
    )
    ok(work.reconcile("request", "b"), 2)
    ok(work.reconcile("--apply"))  # fetched, and the request fulfilled
    shown = plan(work)
    assert [(a["kind"], a["model"], a["reason"]) for a in shown["actions"]] == [
        ("delete", "b", "Unused")
    ]
    ok(work.reconcile("--apply"))
    assert not loads(work, "b")
    converged(work)
    ok(work.reconcile("--apply"))
    converged(work)


# Where a deletion can be killed: before each of its steps, every earlier one done.  What the
# cache of org/b holds there: its ref, its snapshot, its blobs (True while still present).
CRASH_POINTS = {
    "remove_refs": (True, True, True),
    "unlink_entries": (False, True, True),
    "remove_unlinked_blobs": (False, False, True),
    "remove_if_empty": (False, False, False),
}


@pytest.mark.parametrize("step", deletion_halt.STEPS)
def test_kill_during_a_deletion_then_the_next_apply_finishes_it(
    work: Workdir, tmp_path: Path, step: str
) -> None:
    work.write_manifest([{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "org/b"}])
    ok(work.reconcile("--apply"))
    commit = work.model_status("b")["commit"]
    blobs = sorted(os.listdir(repo_dir(work, "b") / "blobs"))
    work.write_manifest([{"name": "a", "repo": "org/a"}])

    # The deletion halts before ``step`` and is killed there, deterministically.
    marker = tmp_path / "halted"
    proc = deletion_halt.start(work, step, marker, "--apply")
    try:
        wait_until(marker.exists, f"the deletion to reach {step}")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # Killed part way: what is gone is gone in order, and the cache is valid.
    ref_left, snapshot_left, blobs_left = CRASH_POINTS[step]
    assert (repo_dir(work, "b") / "refs" / "main").exists() == ref_left
    assert (repo_dir(work, "b") / "snapshots" / commit).exists() == snapshot_left
    assert sorted(os.listdir(repo_dir(work, "b") / "blobs")) == (blobs if blobs_left else [])
    assert_cache_is_valid(work)
    assert loads(work, "a")

    shown = plan(work)  # the blobs left are the bytes the rest of the deletion frees
    assert [(a["kind"], a["model"], a["reason"], a["bytes"]) for a in shown["actions"]] == [
        ("delete", "b", "Interrupted", size_of(B) if blobs_left else 0)
    ]
    ok(work.reconcile("--apply"))
    assert not repo_dir(work, "b").exists()
    assert_cache_is_valid(work)
    converged(work)

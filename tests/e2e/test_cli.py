"""The core loop end to end: the real CLI, a real hub over HTTP, real files and SQLite."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from controller.cli.main import SERVE_PORT
from reconcilers.retention import OLD_REVISION_GRACE
from tests.support.cli import DEADLINE_S, REPO_ROOT, Workdir, reconcile, wait_until
from tests.support.hub import LocalHub, safetensors_bytes

WEIGHTS = safetensors_bytes(bytes(range(256)) * 8192)  # 2 MiB: an LFS file
SHARD = safetensors_bytes(b"\x01\x02" * 300_000)  # 600 kB, .safetensors: LFS by extension
CONFIG = b'{"model_type": "tiny"}'
TOKENIZER = b'{"vocab": {"a": 1}}'
REPO_FILES: dict[str, bytes] = {
    "config.json": CONFIG,
    "model.safetensors": WEIGHTS,
    "text_encoder/model.safetensors": SHARD,
    "tokenizer/tokenizer.json": TOKENIZER,
    "README.md": b"# tiny\n",
}
SELECTED = ["*.json", "*.safetensors"]
SELECTED_BYTES = len(CONFIG) + len(WEIGHTS) + len(SHARD) + len(TOKENIZER)


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    hub.publish("org/tiny", REPO_FILES)
    w = Workdir(tmp_path / "work", hub.url)
    w.write_manifest(
        [{"name": "tiny", "repo": "org/tiny", "include": SELECTED, "priority": "critical"}]
    )
    return w


def blob_of(cache: Path, repo: str, path: str) -> Path:
    snapshot = hf_hub_download(repo, path, cache_dir=cache, local_files_only=True)
    return Path(snapshot).resolve()


def test_plan_on_empty_cache_shows_download_and_changes_nothing(work: Workdir) -> None:
    run = work.reconcile("--plan", "--detailed-exitcode")
    assert run.code == 2, run.err
    assert "+ download tiny  4 files, 2.7 MB  (Missing)" in run.out
    assert "Plan: 1 to download" in run.out
    assert not work.cache.exists() and not work.state.exists()


def test_plan_json_has_documented_shape(work: Workdir) -> None:
    run = work.reconcile("--plan", "--json")
    assert run.code == 0, run.err
    data = run.json()
    assert data["format_version"] == "2.1" and data["changes_pending"] is True
    assert set(data) >= {"generation", "created_at", "actions", "totals", "warnings", "errors"}
    (action,) = data["actions"]
    assert action["kind"] == "download" and action["reason"] == "Missing"
    assert action["bytes"] == SELECTED_BYTES == data["totals"]["download_bytes"]
    assert sorted(f["path"] for f in action["files"]) == [
        "config.json",
        "model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/tokenizer.json",
    ]
    weights = next(f for f in action["files"] if f["path"] == "model.safetensors")
    assert weights["etag"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert data["totals"]["by_kind"]["download"] == 1


def test_apply_downloads_verifies_and_converges(work: Workdir, hub: LocalHub) -> None:
    run = work.reconcile("--apply")
    assert run.code == 0, run.out + run.err
    for path in ("config.json", "model.safetensors", "text_encoder/model.safetensors"):
        assert blob_of(work.cache, "org/tiny", path).read_bytes() == REPO_FILES[path]
    with pytest.raises(LocalEntryNotFoundError):  # excluded by include patterns
        hf_hub_download("org/tiny", "README.md", cache_dir=work.cache, local_files_only=True)
    status = work.model_status("tiny")
    assert status["phase"] == "AVAILABLE" and status["reason"] == "Verified"
    assert status["integrity_score"] == 1.0
    assert status["size_on_disk"] == status["expected_size"] == SELECTED_BYTES
    assert work.status()["observedGeneration"]
    assert work.status()["summary"]["ready"] is True

    again = work.reconcile("--plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes. Models are up to date." in again.out

    hub.clear_requests()
    assert work.reconcile("--apply").code == 0
    assert hub.requests_for("*/resolve/*", "GET") == []


def test_apply_into_a_file_shows_the_plan_then_its_progress_then_the_result(
    work: Workdir, tmp_path: Path
) -> None:
    # `reconcile --apply > log 2>&1`, as cron and CI run it: progress lines go to stderr and
    # the plan to stdout, one file for both, and no terminal.  Python block-buffers stdout
    # into a file; a PYTHONUNBUFFERED inherited from the shell would hide a missing flush, so
    # the command runs without it (an empty value means unset).
    log = tmp_path / "apply.log"
    run = work.start("--apply", log=log, env={"PYTHONUNBUFFERED": ""})
    assert run.wait(timeout=DEADLINE_S) == 0
    out = log.read_text()
    order = [
        "Plan: 1 to download",
        "tiny: 4 files, 2.7 MB on disk",
        "Applied:",
        "  ok     download tiny",
        f"Status written to {work.status_file}",
    ]
    assert all(line in out for line in order), out
    assert sorted(order, key=out.index) == order, out


def test_corrupt_bytes_from_the_hub_are_never_available(work: Workdir, hub: LocalHub) -> None:
    blob = hub.cache_dir / "models--org--tiny" / "blobs" / hashlib.sha256(WEIGHTS).hexdigest()
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF
    blob.write_bytes(bytes(data))

    run = work.reconcile("--apply")
    assert run.code == 1
    status = work.model_status("tiny")
    assert status["phase"] == "FAILED" and status["reason"] == "ChecksumMismatch"
    assert "model.safetensors" in status["message"]
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(
            "org/tiny", "model.safetensors", cache_dir=work.cache, local_files_only=True
        )
    # The good files are kept and verified: only the bad one will be fetched again.
    retry = work.reconcile("--plan", "--json").json()
    assert [[f["path"] for f in a["files"]] for a in retry["actions"]] == [["model.safetensors"]]


def test_model_already_in_cache_is_adopted_without_download(work: Workdir, hub: LocalHub) -> None:
    snapshot_download("org/tiny", cache_dir=work.cache, endpoint=hub.url, allow_patterns=SELECTED)
    plan = work.reconcile("--plan", "--json").json()
    assert [(a["kind"], a["reason"]) for a in plan["actions"]] == [("verify", "Unverified")]
    assert plan["totals"]["download_bytes"] == 0

    hub.clear_requests()
    run = work.reconcile("--apply")
    assert run.code == 0, run.out + run.err
    assert hub.requests_for("*/resolve/*", "GET") == []
    assert work.model_status("tiny")["phase"] == "AVAILABLE"


def test_locally_damaged_file_is_repaired_alone(work: Workdir, hub: LocalHub) -> None:
    assert work.reconcile("--apply").code == 0
    blob = blob_of(work.cache, "org/tiny", "model.safetensors")
    data = bytearray(blob.read_bytes())
    data[5] ^= 0x01
    blob.write_bytes(bytes(data))

    hub.clear_requests()
    run = work.reconcile("--apply")
    assert run.code == 0, run.out + run.err
    assert "model.safetensors: was damaged (model.safetensors: content hashes to" in run.out
    fetched = {r.path for r in hub.requests_for("*/resolve/*", "GET")}
    assert fetched == {
        "/org/tiny/resolve/" + work.model_status("tiny")["commit"] + "/model.safetensors"
    }
    assert blob_of(work.cache, "org/tiny", "model.safetensors").read_bytes() == WEIGHTS
    assert work.model_status("tiny")["phase"] == "AVAILABLE"


def test_a_failing_model_does_not_stop_the_others(work: Workdir) -> None:
    work.write_manifest(
        [
            {"name": "ghost", "repo": "org/does-not-exist", "priority": "critical"},
            {"name": "tiny", "repo": "org/tiny", "include": SELECTED},
        ]
    )
    run = work.reconcile("--apply")
    assert run.code == 1
    assert work.model_status("tiny")["phase"] == "AVAILABLE"
    ghost = work.model_status("ghost")
    assert ghost["phase"] == "FAILED" and ghost["reason"] == "RepoNotFound"
    assert "org/does-not-exist" in ghost["message"]


def test_patterns_that_select_nothing_fail_the_model_and_say_why(work: Workdir) -> None:
    work.write_manifest(
        [
            {"name": "typo", "repo": "org/tiny", "include": ["*.gguf"]},
            {"name": "tiny", "repo": "org/tiny", "include": SELECTED},
        ]
    )
    run = work.reconcile("--apply")
    assert run.code == 1
    assert "typo: no file of org/tiny@main matches include ['*.gguf']" in run.out + run.err
    assert work.model_status("tiny")["phase"] == "AVAILABLE"
    typo = work.model_status("typo")
    assert (typo["phase"], typo["reason"]) == ("FAILED", "NoMatchingFiles")
    assert "['*.gguf']" in typo["message"]


def test_branch_move_with_auto_updates_fetches_only_changed_files(
    work: Workdir, hub: LocalHub
) -> None:
    work.write_manifest(
        [{"name": "tiny", "repo": "org/tiny", "include": SELECTED, "updates": "auto"}]
    )
    assert work.reconcile("--apply").code == 0
    old_commit = work.model_status("tiny")["commit"]
    old_weights = hf_hub_download(
        "org/tiny", "model.safetensors", cache_dir=work.cache, local_files_only=True
    )
    new_weights = WEIGHTS[::-1]
    new_commit = hub.publish("org/tiny", {**REPO_FILES, "model.safetensors": new_weights})

    plan = work.reconcile("--plan", "--json").json()
    (action,) = plan["actions"]
    assert (action["kind"], action["bytes"]) == ("update", len(new_weights))
    # The old revision waits for the switch, and then a grace period: only the blob the new
    # one does not share would go.
    (old_revision,) = plan["withheld"]
    assert (old_revision["kind"], old_revision["reason"]) == ("delete", "OldRevision")
    assert old_revision["withheld_because"] == "GracePeriod"
    assert old_revision["bytes"] == len(WEIGHTS)
    hub.clear_requests()
    assert work.reconcile("--apply").code == 0
    assert [r.path.rsplit("/", 1)[-1] for r in hub.requests_for("*/resolve/*", "GET")] == [
        "model.safetensors"
    ]
    assert blob_of(work.cache, "org/tiny", "model.safetensors").read_bytes() == new_weights
    assert work.model_status("tiny")["commit"] == new_commit
    # An application that resolved the old snapshot just before the switch still reads it.
    assert Path(old_weights).read_bytes() == WEIGHTS
    (held,) = work.status()["retention"]["deletions"]
    assert (held["commit"], held["state"]) == (old_commit, "held")
    assert held["held_because"].startswith("kept until ")

    # Meanwhile the plan has nothing to do, and says what it holds back until when.
    waiting = work.reconcile("--plan", "--detailed-exitcode")
    assert waiting.code == 0, waiting.out + waiting.err
    assert "for applications that resolved it before the switch" in waiting.out

    # The grace period counts from the ref's mtime (written at the switch): age it past.
    ref = work.cache / "models--org--tiny" / "refs" / "main"
    long_ago = time.time() - OLD_REVISION_GRACE.total_seconds() - 60
    os.utime(ref, (long_ago, long_ago))
    plan = work.reconcile("--plan", "--json").json()
    assert [(a["kind"], a["reason"], a["commit"], a["bytes"]) for a in plan["actions"]] == [
        ("delete", "OldRevision", old_commit, len(WEIGHTS))
    ]
    assert work.reconcile("--apply").code == 0
    assert not Path(old_weights).exists()
    assert not (work.cache / "models--org--tiny" / "snapshots" / old_commit).exists()
    assert blob_of(work.cache, "org/tiny", "model.safetensors").read_bytes() == new_weights
    converged = work.reconcile("--plan", "--detailed-exitcode")
    assert converged.code == 0, converged.out + converged.err
    assert work.status()["retention"]["deletions"] == []


def test_an_update_with_a_refused_file_keeps_the_old_commit_loadable_offline(
    work: Workdir, hub: LocalHub
) -> None:
    # The zero-downtime promise when an update fails: the ref stays on the old commit, so an
    # application loading offline gets every file of it, even though one new file arrived.
    work.write_manifest(
        [{"name": "tiny", "repo": "org/tiny", "include": SELECTED, "updates": "auto"}]
    )
    assert work.reconcile("--apply").code == 0
    old_commit = work.model_status("tiny")["commit"]
    ref = work.cache / "models--org--tiny" / "refs" / "main"
    new_files = {
        **REPO_FILES,
        "model.safetensors": WEIGHTS[::-1],
        "text_encoder/model.safetensors": SHARD[::-1],
    }
    new_commit = hub.publish("org/tiny", new_files)
    hub.faults.fail(
        f"/org/tiny/resolve/{new_commit}/text_encoder/model.safetensors", 403, times=None
    )

    run = work.reconcile("--apply")
    assert run.code == 1, run.out + run.err
    assert hub.requests_for(f"*/resolve/{new_commit}/model.safetensors", "GET")  # it arrived
    assert ref.read_text() == old_commit
    status = work.model_status("tiny")
    assert (status["phase"], status["reason"]) == ("FAILED", "AccessDenied"), status
    assert status["missing_files"] == ["text_encoder/model.safetensors"]
    for path in (p for p in REPO_FILES if p != "README.md"):  # every selected file
        loaded = hf_hub_download("org/tiny", path, cache_dir=work.cache, local_files_only=True)
        assert Path(loaded).read_bytes() == REPO_FILES[path], path

    hub.faults.clear()
    assert work.reconcile("--apply").code == 0
    assert ref.read_text() == new_commit
    for path in ("model.safetensors", "text_encoder/model.safetensors"):
        loaded = hf_hub_download("org/tiny", path, cache_dir=work.cache, local_files_only=True)
        assert Path(loaded).read_bytes() == new_files[path], path


def test_branch_move_with_notify_reports_update_available(work: Workdir, hub: LocalHub) -> None:
    assert work.reconcile("--apply").code == 0
    old = work.model_status("tiny")["commit"]
    new_commit = hub.publish("org/tiny", {**REPO_FILES, "config.json": b"{}"})
    run = work.reconcile("--apply")
    assert run.code == 0, run.out + run.err
    status = work.model_status("tiny")
    assert status["phase"] == "AVAILABLE" and status["commit"] == old
    assert status["update_available"] is True and status["upstream_commit"] == new_commit


def test_status_command_table_and_json(work: Workdir) -> None:
    assert work.reconcile("status").code == 1  # nothing applied yet: says so
    assert work.reconcile("--apply").code == 0
    table = work.reconcile("status")
    assert table.code == 0
    assert "tiny" in table.out and "AVAILABLE" in table.out and "100%" in table.out
    data = work.reconcile("status", "--json").json()
    assert data["kind"] == "ModelSetStatus" and data["models"][0]["phase"] == "AVAILABLE"


def test_on_demand_model_is_not_downloaded_until_requested(work: Workdir) -> None:
    work.write_manifest([{"name": "tiny", "repo": "org/tiny", "policy": "on-demand"}])
    run = work.reconcile("--apply")
    assert run.code == 0, run.out + run.err
    status = work.model_status("tiny")
    assert status["phase"] == "MISSING" and status["reason"] == "NotRequested"
    assert not (work.cache / "models--org--tiny").exists()


def test_hub_down_after_apply_plans_from_memory(work: Workdir, hub: LocalHub) -> None:
    assert work.reconcile("--apply").code == 0
    hub.server.stop()
    run = work.reconcile("--plan", "--detailed-exitcode")
    assert run.code == 0, run.out + run.err
    assert "planned against its last answer" in run.out


def test_offline_apply_sends_no_request_and_says_what_it_could_not_fetch(
    work: Workdir, hub: LocalHub
) -> None:
    assert work.reconcile("--apply").code == 0
    weights = blob_of(work.cache, "org/tiny", "model.safetensors")
    config = Path(
        hf_hub_download("org/tiny", "config.json", cache_dir=work.cache, local_files_only=True)
    )
    weights.unlink()  # its bytes are gone: only the hub has them
    config.unlink()  # only the link is gone: its blob is still cached
    hub.clear_requests()

    offline = work.reconcile("--apply", "--offline")

    assert offline.code == 1, offline.out + offline.err
    assert hub.requests == []
    assert config.read_bytes() == CONFIG  # relinked from the cached blob
    assert not weights.exists()
    tiny = work.model_status("tiny")
    assert (tiny["phase"], tiny["reason"]) == ("FAILED", "HubUnreachable")
    assert "offline: org/tiny@" in tiny["message"] and "model.safetensors" in tiny["message"]
    assert "config.json" not in tiny["message"]

    assert work.reconcile("--apply").code == 0
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == weights.name
    assert work.model_status("tiny")["phase"] == "AVAILABLE"


def test_verify_trusts_unchanged_files_and_finds_damage(work: Workdir, hub: LocalHub) -> None:
    assert work.reconcile("--apply").code == 0
    quick = work.reconcile("verify", "--json").json()
    assert (quick["checked"], quick["hashed"], quick["damaged"]) == (4, 0, [])
    full = work.reconcile("verify", "--full", "--json").json()
    assert (full["checked"], full["hashed"]) == (4, 4)

    blob = blob_of(work.cache, "org/tiny", "text_encoder/model.safetensors")
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x80
    blob.write_bytes(bytes(data))
    run = work.reconcile("verify")
    assert run.code == 1 and "text_encoder/model.safetensors" in run.out
    status = work.model_status("tiny")
    assert status["phase"] == "CORRUPTED"
    assert status["corrupt_files"] == ["text_encoder/model.safetensors"]

    plan = work.reconcile("--plan", "--json").json()
    assert [(a["kind"], [f["path"] for f in a["files"]]) for a in plan["actions"]] == [
        ("repair", ["text_encoder/model.safetensors"])
    ]
    assert work.reconcile("--apply").code == 0
    assert blob_of(work.cache, "org/tiny", "text_encoder/model.safetensors").read_bytes() == SHARD
    assert work.model_status("tiny")["phase"] == "AVAILABLE"
    assert list((work.cache / "models--org--tiny" / ".quarantine").iterdir())


# --------------------------------------------------------------------------- usage

# Options a mode or command would accept and then not use: each is refused before any work,
# with one line that says what it goes with.  (-f is added after each, as a user would.)
REFUSED = [
    (
        ["--plan", "--offline", "--state", "node.status.yaml"],
        "--offline does not apply with --state",
    ),
    (
        ["--apply", "--detailed-exitcode"],
        "--detailed-exitcode only applies to --plan; "
        "an apply exits 0 when it converged and 1 when it did not",
    ),
    (["--watch", "--detailed-exitcode"], "--detailed-exitcode only applies to --plan; "),
    (
        ["--watch", "--json"],
        "--json only applies to --plan and --apply; for JSON logs, use --log-format json",
    ),
    (
        ["--watch", "--budget-bytes", "1000"],
        "--budget-bytes only applies to --plan and --apply; "
        "a controller keeps to the manifest's retention.max_storage_usage_percent",
    ),
    (["--watch", "--state", "node.yaml"], "--state only applies to --plan"),
    (["--apply", "--state", "node.yaml"], "--state only applies to --plan"),
    (["--plan", "--port", "0"], "--port only applies to --watch"),
    (["--offline"], "--offline only applies to --plan, --apply and --watch"),
    (["--plan", "validate"], "--plan does not apply to `reconcile validate`"),
    (
        ["--offline", "--locked", "verify"],
        "--offline and --locked do not apply to `reconcile verify`",
    ),
    (["--json", "lock"], "--json does not apply to `reconcile lock`"),
    (["--budget-bytes", "1", "status"], "--budget-bytes does not apply to `reconcile status`"),
    (["status", "--status-file", "node.yaml"], "status: give -f or --status-file, not both"),
    (["request", "tiny", "--timeout", "5"], "request: --timeout only applies to --wait"),
    (["validate", "--", "true"], "only `lease` runs a command given after --"),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_an_option_that_would_be_ignored_is_refused(
    work: Workdir, hub: LocalHub, args: list[str], message: str
) -> None:
    # A short timeout: a --watch that was not refused would run until killed.
    run = reconcile(*args, "-f", str(work.manifests), endpoint=work.endpoint, timeout=20)
    assert run.code == 1 and run.out == "", run.out + run.err
    (line,) = run.err.splitlines()  # one line, no usage dump, no traceback
    assert line.startswith(f"reconcile: {message}"), line
    assert not work.cache.exists() and not work.state.exists()
    assert hub.requests == []


def test_a_command_without_manifests_refuses_top_level_options(work: Workdir) -> None:
    run = reconcile("--port", "0", "schema", endpoint=work.endpoint, timeout=20)
    assert (run.code, run.out) == (1, "")
    assert run.err == "reconcile: --port does not apply to `reconcile schema`\n"


def test_options_before_a_command_mean_what_they_mean_after_it(work: Workdir) -> None:
    # The repository's own manifests/ (the default, and the tests' working directory) hold
    # other models: this must validate the work directory's one.
    run = reconcile("-f", str(work.manifests), "validate", endpoint=work.endpoint)
    assert (run.code, run.out) == (0, "1 manifest file(s), 1 model(s): valid.\n"), run.err
    # -v and --log-format, which every command takes, after its name as well as before it.
    after = reconcile("validate", "-f", str(work.manifests), "-v", "--log-format", "json")
    assert (after.code, after.out) == (0, run.out), after.err
    assert work.reconcile("--apply").code == 0
    shown = reconcile("--json", "status", "-f", str(work.manifests), endpoint=work.endpoint)
    assert shown.code == 0, shown.err
    assert shown.json()["models"][0]["phase"] == "AVAILABLE"


def test_serve_takes_host_and_port_before_its_name_and_logs_requests_with_v(
    tmp_path: Path, work: Workdir, hub: LocalHub
) -> None:
    log = tmp_path / "serve.log"
    args = ["-v", "--host", "127.0.0.1", "--port", "0", "serve", str(hub.cache_dir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", *args],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    def announced() -> re.Match[str] | None:
        assert proc.poll() is None, log.read_text()
        return re.search(r" at (http://127\.0\.0\.1:(\d+))$", log.read_text(), re.M)

    try:
        found = wait_until(announced, "serve to announce its address")
        assert int(found.group(2)) != SERVE_PORT  # --port 0 took effect: a port of the OS's
        with urllib.request.urlopen(f"{found.group(1)}/api/models/org/tiny", timeout=10) as r:
            assert r.status == 200
        wait_until(
            lambda: '"GET /api/models/org/tiny" 200' in log.read_text(),
            "-v to log the request",
        )
    finally:
        proc.terminate()
        code = proc.wait(timeout=10)
    assert code == 0, log.read_text()

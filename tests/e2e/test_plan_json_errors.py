"""``--plan --json`` always prints the plan document, also when no plan can be made."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Workdir
from tests.support.hub import LocalHub

TINY = {"name": "tiny", "repo": "org/tiny"}


def test_an_invalid_manifest_gives_the_json_document_with_located_errors(
    tmp_path: Path, hub: LocalHub
) -> None:
    work = Workdir(tmp_path / "work", hub.url)
    manifest = work.write_manifest([{**TINY, "priority": "urgent"}])

    run = work.reconcile("--plan", "--json", "--detailed-exitcode")

    assert run.code == 1, run.out + run.err
    document = run.json()
    assert document["format_version"] == "2.1" and document["actions"] == []
    assert document["changes_pending"] is False
    [error] = document["errors"]
    assert error["file"] == str(manifest)
    assert error["path"] == "spec.models[0].priority"
    assert error["line"] == next(
        i for i, text in enumerate(manifest.read_text().splitlines(), 1) if "urgent" in text
    )
    assert "urgent" in error["message"]
    assert "priority" in run.err  # people reading the CI log still see it


def test_a_locked_mismatch_gives_the_json_document_with_its_errors(
    tmp_path: Path, hub: LocalHub
) -> None:
    hub.publish("org/tiny", {"config.json": b"{}"})
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([TINY])
    assert work.reconcile("lock").code == 0
    work.write_manifest([{**TINY, "include": ["*.json"]}])  # the lock no longer matches

    run = work.reconcile("--plan", "--locked", "--json")

    assert run.code == 1, run.out + run.err
    document = run.json()
    assert document["format_version"] == "2.1" and document["actions"] == []
    messages = [e["message"] for e in document["errors"]]
    assert any(m.startswith("tiny: the lock is stale") for m in messages), messages
    assert messages[-1].startswith("--locked: the lock is out of sync")


def test_hub_errors_have_the_same_shape(tmp_path: Path, hub: LocalHub) -> None:
    work = Workdir(tmp_path / "work", hub.url)
    work.write_manifest([{**TINY, "repo": "org/absent"}])

    run = work.reconcile("--plan", "--json")

    assert run.code == 1, run.out + run.err
    [error] = run.json()["errors"]
    assert error["file"] is None and error["line"] is None and error["path"] is None
    assert error["message"].startswith("tiny: ")

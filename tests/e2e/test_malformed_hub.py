"""A hub whose answer about a revision lacks or garbles a field fails that model, through the
real CLI: exit 1, the model FAILED with a message naming the field, no file of it in the
cache, and the other model of the manifest AVAILABLE all the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Workdir
from tests.support.hub import LocalHub

BAD = "acme/garbled"
GOOD = "acme/fine"


def _first(edit: Callable[[dict[str, Any]], object]) -> Callable[[Any], Any]:
    def rewrite(document: Any) -> Any:
        edit(document["siblings"][0])
        return document

    return rewrite


CASES: list[tuple[str, Callable[[Any], Any], str]] = [
    ("no sha", lambda d: {k: v for k, v in d.items() if k != "sha"}, "'sha' is missing"),
    ("sha not hex", lambda d: {**d, "sha": "not-a-commit"}, "'sha' is 'not-a-commit'"),
    ("no siblings", lambda d: {k: v for k, v in d.items() if k != "siblings"}, "'siblings'"),
    ("siblings a string", lambda d: {**d, "siblings": "all"}, "'siblings' is 'all'"),
    ("rfilename a number", _first(lambda s: s.update(rfilename=3)), "rfilename is 3"),
    ("size negative", _first(lambda s: s.update(size=-1)), ".size is -1"),
    ("size not an int", _first(lambda s: s.update(size="64")), ".size is '64'"),
    ("sha256 malformed", _first(lambda s: s["lfs"].update(sha256="x" * 64)), "lfs.sha256"),
]


@pytest.mark.parametrize(("case", "edit", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_answer_fails_that_model(
    tmp_path: Path, hub: LocalHub, case: str, edit: Callable[[Any], Any], says: str
) -> None:
    hub.publish(BAD, {"model.safetensors": b"\x01" * 4096})
    hub.publish(GOOD, {"config.json": b"{}"})
    hub.faults.rewrite(f"/api/models/{BAD}/revision/*", edit)
    work = Workdir(tmp_path / "node", hub.url)
    work.write_manifest([{"name": "bad", "repo": BAD}, {"name": "good", "repo": GOOD}])

    run = work.reconcile("--apply")

    assert run.code == 1, run.err
    assert "Traceback" not in run.err + run.out
    bad = work.model_status("bad")
    assert bad["phase"] == "FAILED", case
    assert says in bad["message"], bad["message"]
    assert work.model_status("good")["phase"] == "AVAILABLE"
    assert not (work.cache / "models--acme--garbled" / "snapshots").exists()

"""Bad input through the real CLI: every problem as file:line: path: message, exit 1,
nothing created or changed on disk, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Workdir, reconcile

HEADER = "apiVersion: modelsync/v1\nkind: ModelSet\nmetadata: {name: bad}\n"


def spec(tmp: Path, models: str, extra: str = "") -> str:
    return f"{HEADER}spec:\n  cache: {tmp}/cache\n  state: {tmp}/state\n{extra}  models:\n{models}"


GOOD_MODEL = "    - {name: m, repo: org/m}\n"

CASES = [
    ("yaml-syntax", lambda t: spec(t, "    - {name: m, repo: org/m\n"), ":9:", "(document)"),
    (
        "unknown-key",
        lambda t: spec(t, "    - name: m\n      repo: org/m\n      revison: main\n"),
        ":10: spec.models[0].revison:",
        "did you mean 'revision'",
    ),
    (
        "wrong-type",
        lambda t: spec(t, "    - name: m\n      repo: org/m\n      include: '*.json'\n"),
        ":10: spec.models[0].include:",
        "list",
    ),
    (
        "bad-enum",
        lambda t: spec(t, "    - name: m\n      repo: org/m\n      priority: urgent\n"),
        ":10: spec.models[0].priority:",
        "critical",
    ),
    (
        "bad-repo",
        lambda t: spec(t, "    - name: m\n      repo: ../../etc\n"),
        ":9: spec.models[0].repo:",
        "invalid repo id '../../etc'",
    ),
    (
        "bad-name",
        lambda t: spec(t, "    - name: 'has space'\n      repo: org/m\n"),
        ":8: spec.models[0].name:",
        "invalid name 'has space'",
    ),
    (
        "duplicate-name",
        lambda t: spec(t, GOOD_MODEL + GOOD_MODEL),
        ":9: spec.models[1].name:",
        "duplicate",
    ),
    (
        "api-version",
        lambda t: spec(t, GOOD_MODEL).replace("modelsync/v1", "modelsync/v9"),
        ":1: apiVersion:",
        "modelsync/v1",
    ),
    (
        "kind",
        lambda t: spec(t, GOOD_MODEL).replace("kind: ModelSet", "kind: Deployment"),
        ":2: kind:",
        "ModelSet",
    ),
    (
        "token",
        lambda t: spec(t, GOOD_MODEL, "  token: hf_abcdefghijklmnop\n"),
        ":7: spec.token:",
        "tokens do not belong in manifests",
    ),
    ("missing-repo", lambda t: spec(t, "    - {name: m}\n"), ":8: spec.models[0]", "repo"),
    (
        "bad-revision",
        lambda t: spec(t, "    - {name: m, repo: org/m, revision: ../main}\n"),
        ":8: spec.models[0].revision:",
        "'..', '\\' and a leading '/' are not allowed",
    ),
]


@pytest.mark.parametrize(("case", "text", "where", "says"), CASES, ids=[c[0] for c in CASES])
def test_invalid_manifest_is_reported_and_changes_nothing(
    tmp_path: Path, case: str, text: object, where: str, says: str
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(text(tmp_path))  # type: ignore[operator]
    for args in (("--plan", "--detailed-exitcode"), ("--apply",), ("validate",)):
        run = reconcile(*args, "-f", str(manifest))
        assert run.code == 1, (args, run.out, run.err)
        assert f"{manifest}{where}" in run.err, run.err
        assert says, "every case names the words its message must hold"
        # The message on the problem's own line, so a case can never pass on another line's.
        line = next(ln for ln in run.err.splitlines() if ln.startswith(f"{manifest}{where}"))
        assert says in line, run.err
        assert "Traceback" not in run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.yaml"]


def test_all_problems_in_all_files_at_once(tmp_path: Path) -> None:
    w = Workdir(tmp_path, "http://127.0.0.1:9")
    w.write_manifest([{"name": "a", "repo": "org/a", "priorty": "high"}], name="one.yaml")
    w.write_manifest(
        [{"name": "a", "repo": "org/a"}, {"name": "b", "repo": "bad repo"}], name="two.yaml"
    )
    run = w.reconcile("--plan")
    assert run.code == 1
    lines = [line for line in run.err.splitlines() if ".yaml:" in line]
    assert any("one.yaml" in line and "priorty" in line for line in lines)
    assert any("two.yaml" in line and "duplicate" in line for line in lines)
    assert any("two.yaml" in line and "models[1].repo" in line for line in lines)
    assert not w.cache.exists() and not w.state.exists()

"""Quarantined bytes as the plan's views and the status show them: counted, per repo."""

from __future__ import annotations

import json

import pytest

from controller.cli import render
from controller.domain import Plan, Quarantine
from controller.planning import retention_view
from tests.support.factories import NOW

REPOS = (Quarantine("org/a", 2, 3_000_000, 1), Quarantine("org/b", 1, 500, 0))


@pytest.mark.parametrize(
    ("quarantined", "files", "total"),
    [((), 0, 0), (REPOS[1:], 1, 500), (REPOS, 3, 3_000_500)],
    ids=["none", "one-repo", "two-repos"],
)
def test_the_status_counts_quarantined_files_and_bytes(
    quarantined: tuple[Quarantine, ...], files: int, total: int
) -> None:
    view = retention_view.from_plan(Plan((), "g", NOW, quarantined=quarantined))
    assert (view.quarantined_files, view.quarantined_bytes) == (files, total)
    assert [(q.repo, q.files, q.bytes) for q in view.quarantined] == [
        (q.repo, q.files, q.bytes) for q in quarantined
    ]
    lines = [line for line in retention_view.to_lines(view) if line.startswith("quarantined")]
    assert len(lines) == len(quarantined)


def test_the_plan_json_has_the_quarantine_per_repo() -> None:
    document = json.loads(render.plan_to_json(Plan((), "g", NOW, quarantined=REPOS)))
    assert document["format_version"] == "2.1"
    assert document["quarantined"] == [
        {"repo": "org/a", "files": 2, "bytes": 3_000_000, "expiring": 1},
        {"repo": "org/b", "files": 1, "bytes": 500, "expiring": 0},
    ]


def test_the_plan_text_shows_the_quarantine_and_what_is_due() -> None:
    text = render.plan_to_text(Plan((), "g", NOW, quarantined=REPOS))
    assert "  org/a  2 files, 3.0 MB  (1 due now)" in text.splitlines()
    assert "  org/b  1 file, 500 B" in text.splitlines()

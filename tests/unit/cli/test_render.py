"""The plan's and the status's text: what a person reads, each size said once."""

from __future__ import annotations

import re

import pytest

from controller.cli import render
from controller.domain import Action, ActionKind, BudgetFit, FileWork, Plan, Reason
from controller.domain.status import RetentionStatus
from controller.planning import retention_view
from reconcilers.base import ActionResult, FileOutcome
from tests.support.factories import C1, NOW

GB = 1_000_000_000
PERCENT = "retention.max_storage_usage_percent 80% of the cache disk's 1.0 TB"
# A size written twice, in round units and in bytes: "158.3 GB (158300000000 bytes)".
_TWICE = re.compile(r"\d+ bytes\)")


def download(model: str, size: int) -> Action:
    files = (FileWork("model.safetensors", size, "a" * 64),)
    return Action(
        ActionKind.DOWNLOAD,
        model,
        f"org/{model}",
        "main",
        C1,
        files,
        size,
        Reason.MISSING,
        "not in the cache",
    )


@pytest.mark.parametrize(
    ("fit", "line"),
    [
        (
            BudgetFit(
                800 * GB, PERCENT, on_disk=158_300_000_000, transfers=136_200_000_000, freed=0
            ),
            "Disk budget: 158.3 GB on disk + 136.2 GB to transfer = 294.5 GB of 800.0 GB "
            f"({PERCENT}): fits.",
        ),
        (
            BudgetFit(
                1_000_000,
                "--budget-bytes 1000000",
                on_disk=600_000,
                transfers=2_100_000,
                freed=200_000,
            ),
            "Disk budget: 600.0 kB on disk + 2.1 MB to transfer - 200.0 kB freed = 2.5 MB of "
            "1.0 MB (--budget-bytes 1000000): DOES NOT FIT, 1.5 MB over.",
        ),
    ],
    ids=["fits", "over, with deletions"],
)
def test_the_plan_ends_with_the_budget_in_one_short_line(fit: BudgetFit, line: str) -> None:
    plan = Plan(
        actions=(download("a", fit.transfers),), generation="g1", created_at=NOW, budget=fit
    )
    text = render.plan_to_text(plan)
    assert text.rstrip("\n").splitlines()[-1] == line
    assert not _TWICE.search(text)
    # The exact bytes are for programs: the JSON has each of them.
    assert render.plan_to_dict(plan)["budget"] == {
        "budget": fit.budget,
        "source": fit.source,
        "on_disk": fit.on_disk,
        "transfers": fit.transfers,
        "freed": fit.freed,
        "total": fit.total,
        "fits": fit.fits,
    }


def test_the_status_tables_budget_line_is_short_too() -> None:
    view = RetentionStatus(
        mode="enforce",
        budget_bytes=800 * GB,
        budget_source=PERCENT,
        managed_bytes=158_300_000_000,
        fits=False,
    )
    assert retention_view.to_lines(view) == [
        f"Disk budget: 158.3 GB on disk of 800.0 GB ({PERCENT}); after the plan: DOES NOT FIT."
    ]


def test_a_file_found_damaged_and_not_fetched_again_says_so() -> None:
    action = Action(
        ActionKind.VERIFY,
        "m",
        "org/m",
        "main",
        C1,
        (FileWork("a.bin", 10, "a" * 64), FileWork("b.bin", 10, "b" * 64)),
        20,
        Reason.UNVERIFIED,
        "2 files present but unverified",
    )
    result = ActionResult(
        action,
        (
            FileOutcome("a.bin", ok=True, transferred=10, repaired="content hashes to 3f9a"),
            FileOutcome(
                "b.bin",
                ok=False,
                reason=Reason.ACCESS_DENIED,
                detail="b.bin: 403 Forbidden",
                repaired="content hashes to 77c1",
            ),
        ),
    )
    assert render.results_to_text([result]).splitlines() == [
        "Applied:",
        "  FAILED verify m: 2 files, 10 B transferred",
        "         a.bin: was damaged (content hashes to 3f9a); fetched again",
        "         b.bin: was damaged (content hashes to 77c1); fetching it again failed:",
        "         b.bin: 403 Forbidden",
    ]


def test_a_probes_output_over_several_lines_keeps_the_status_table_one_row_per_model() -> None:
    from controller.domain.status import ModelStatus, StatusReport, StatusSummary

    output = "exit status 1: Traceback (most recent call last):\n  File x\nValueError: bad"
    model = ModelStatus(
        name="m",
        repo="org/m",
        revision="main",
        commit=C1,
        phase="FAILED",
        reason="ProbeFailed",
        message=f"files verified, but the probe failed: {output}",
        size_on_disk=1,
        expected_size=1,
        integrity_score=1.0,
        priority="auto",
        policy="always",
        last_checked=NOW,
    )
    summary = StatusSummary(
        models=1, phases={"FAILED": 1}, size_on_disk=1, expected_size=1, ready=False
    )
    report = StatusReport(
        observedGeneration="g", updatedAt=NOW, summary=summary, models=(model,)
    )

    header, row, *_ = render.status_to_text(report).splitlines()

    assert row.startswith("m ") and row.endswith(
        "files verified, but the probe failed: exit status 1: Traceback (most recent call "
        "last): … (+2 more lines)"
    )
    assert "ValueError" not in render.status_to_text(report)


def test_in_recommend_mode_the_budget_line_subtracts_no_deletion() -> None:
    from controller.domain import RetentionMode

    fit = BudgetFit(
        1_000_000, "--budget-bytes 1000000", on_disk=900_000, transfers=300_000, freed=400_000
    )
    plan = Plan(
        actions=(download("a", fit.transfers),),
        generation="g1",
        created_at=NOW,
        budget=fit,
        retention_mode=RetentionMode.RECOMMEND,
    )

    assert render.plan_to_text(plan).rstrip("\n").splitlines()[-1] == (
        "Disk budget: 900.0 kB on disk + 300.0 kB to transfer = 1.2 MB of 1.0 MB "
        "(--budget-bytes 1000000): DOES NOT FIT, 200.0 kB over; the recommended deletions "
        "would free 400.0 kB."
    )
    assert retention_view.from_plan(plan).fits is False  # the status says the same

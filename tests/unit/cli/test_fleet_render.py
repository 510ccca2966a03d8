"""The fleet view of ``reconcile status --from``: node x model, and the summary line."""

from __future__ import annotations

from controller.cli.render import FleetMember, fleet_to_dict, fleet_to_text
from controller.domain import Phase
from controller.domain.progress import ModelProgress
from tests.support.status_reports import model_status, status_report

GB = 1_000_000_000


def fleet() -> list[FleetMember]:
    progress = ModelProgress(bytes_done=3 * GB, bytes_total=4 * GB, files_done=1, files_total=2)
    return [
        FleetMember(
            "http://a:8477",
            status_report(
                model_status("ti2v", Phase.AVAILABLE, expected_size=8 * GB),
                model_status("t2v", Phase.AVAILABLE, expected_size=9 * GB),
                node="gpu-a",
            ),
        ),
        FleetMember(
            "http://b:8477",
            status_report(
                model_status("ti2v", Phase.AVAILABLE, expected_size=8 * GB),
                model_status("t2v", Phase.DOWNLOADING, expected_size=9 * GB, progress=progress),
                node="gpu-b",
            ),
        ),
        FleetMember(
            "http://c:8477",
            status_report(
                model_status("ti2v", Phase.MISSING, expected_size=8 * GB, size_on_disk=2 * GB),
                node="gpu-c",
            ),
        ),
        FleetMember("http://d:8477", None, "ConnectError: connection refused"),
    ]


def test_one_row_per_node_one_column_per_model_and_a_summary() -> None:
    lines = fleet_to_text(fleet()).splitlines()
    assert lines[0].split() == ["NODE", "ti2v", "t2v", "NOTE"]
    assert lines[1].split() == ["gpu-a", "AVAILABLE", "AVAILABLE"]
    assert lines[2].split() == ["gpu-b", "AVAILABLE", "DOWNLOADING", "75%"]
    assert lines[3].split() == ["gpu-c", "MISSING", "-"]  # gpu-c does not declare t2v
    assert lines[4].split(maxsplit=3) == [
        "http://d:8477",
        "?",
        "?",
        "unreachable: ConnectError: connection refused",
    ]
    assert lines[6] == (
        "0 of 2 models AVAILABLE on all 3 nodes that answered; 2 nodes behind (gpu-b, gpu-c); "
        "7.0 GB still to fetch; 1 of 4 unreachable"
    )


def test_the_json_view_has_the_same_figures() -> None:
    document = fleet_to_dict(fleet())
    assert document["summary"] == {
        "nodes": 4,
        "models": ["ti2v", "t2v"],
        "available_everywhere": [],
        "nodes_behind": ["gpu-b", "gpu-c"],
        "unreachable": ["http://d:8477"],
        "bytes_to_fetch": 7 * GB,  # 1 GB left of b's transfer, 6 GB that c lacks
    }
    b = document["nodes"][1]
    assert (b["node"], b["reachable"], b["models"]["t2v"]["bytes_to_fetch"]) == ("gpu-b", True, GB)
    d = document["nodes"][3]
    assert (d["node"], d["reachable"], d["error"], d["models"]) == (
        "http://d:8477",
        False,
        "ConnectError: connection refused",
        {},
    )


def test_a_model_available_everywhere_is_counted() -> None:
    members = fleet()[:2]
    text = fleet_to_text(members).splitlines()[-1]
    assert text.startswith("1 of 2 models AVAILABLE on all 2 nodes that answered; 1 node behind")

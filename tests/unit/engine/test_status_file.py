"""The status file's text: what a write puts on disk, what a read gives back, and the one line
a damaged file is reported with."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from controller.domain import Phase, Reason
from controller.domain.status import ModelStatus, StatusReport, StatusSummary
from controller.engine import status_file

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def report(node: str | None = None) -> StatusReport:
    model = ModelStatus(
        name="wan",
        repo="Wan-AI/Wan2.2-T2V-A14B",
        revision="main",
        commit="1" * 40,
        phase=Phase.AVAILABLE,
        reason=Reason.VERIFIED,
        message="verified: ünïcode stays as written",
        size_on_disk=10,
        expected_size=10,
        integrity_score=1.0,
        priority="auto",
        policy="always",
        last_checked=NOW,
    )
    summary = StatusSummary(
        models=1, phases={"AVAILABLE": 1}, size_on_disk=10, expected_size=10, ready=True
    )
    return StatusReport(
        observedGeneration="g7", updatedAt=NOW, summary=summary, models=(model,), node=node
    )


def test_a_written_status_reads_back_equal_and_names_no_node(tmp_path: Path) -> None:
    path = tmp_path / "status.yaml"
    status_file.write(path, report())

    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert list(data)[:4] == ["apiVersion", "kind", "observedGeneration", "updatedAt"]
    assert "node" not in data
    assert "ünïcode" in text  # written as text, not as \\u escapes
    assert status_file.read(path) == report()
    assert [p.name for p in tmp_path.iterdir()] == ["status.yaml"]  # no temporary left behind


def test_a_node_given_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "status.yaml"
    status_file.write(path, report(node="gpu-1"))

    assert yaml.safe_load(path.read_text())["node"] == "gpu-1"
    assert status_file.read(path).node == "gpu-1"


def test_a_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "status.yaml"
    path.write_text("x" * 100_000)  # longer than any status: no tail of it may survive

    status_file.write(path, report())

    assert status_file.read(path) == report()


def valid() -> str:
    return yaml.safe_dump(status_file.to_dict(report()), sort_keys=False)


DAMAGED: dict[str, tuple[bytes, str]] = {
    "not UTF-8": (b"apiVersion: x\n\xff\xfe", r"^not UTF-8 text \(byte 14\)$"),
    "a bad indent": (
        b"apiVersion: x\n  kind: y\n kind: z\n",
        r"^not valid YAML at line 2: mapping values are not allowed",
    ),
    "an unclosed quote": (b'kind: "open\n', r"^not valid YAML at line 2: .*"),
    "a control character": (
        b"kind: \x07\n",
        r"^not valid YAML: unacceptable character #x0007: .* position 6$",
    ),
    "a list": (b"- 1\n- 2\n", r"^the document: Input should be a valid dictionary"),
    "an empty file": (b"", r"^the document: Input should be a valid dictionary"),
    "one field wrong": (
        valid().replace("observedGeneration: g7", "observedGeneration: [1]").encode(),
        r"^observedGeneration: Input should be a valid string$",
    ),
    "several fields wrong": (
        valid()
        .replace("observedGeneration: g7", "observedGeneration: [1]")
        .replace("models: 1", "models: many")
        .encode(),
        r"^observedGeneration: Input should be a valid string \(and 1 more\)$",
    ),
    "a nested field missing": (
        valid().replace("  ready: true\n", "").encode(),
        r"^summary\.ready: Field required$",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_status_is_reported_in_one_line(tmp_path: Path, case: str) -> None:
    content, says = DAMAGED[case]
    path = tmp_path / "status.yaml"
    path.write_bytes(content)

    with pytest.raises(status_file.UnreadableStatus, match=says) as raised:
        status_file.read(path)

    assert "\n" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_missing_status_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        status_file.read(tmp_path / "absent.yaml")


def test_the_text_is_what_the_standard_safe_dumper_writes(tmp_path: Path) -> None:
    # Values whose YAML spelling needs care: quoted look-alikes of other types, empty and
    # multi-line strings, floats, nulls, nested mappings, empty and non-empty lists.
    tricky = report().models[0].model_copy(
        update={
            "message": "line one\nline two: 'quoted' \"too\"",
            "commit": None,
            "missing_files": ("true", "null", "0123", "", "a: b", "- x", "ü/ß.bin"),
            "corrupt_files": (),
            "integrity_score": 0.5,
            "usage_frequency": 1e-17,
            "average_generation_seconds": 12.0,
            "queue_position": 3,
        }
    )
    summary = report().summary.model_copy(update={"phases": {"AVAILABLE": 1, "yes": 0}})
    written = report().model_copy(update={"models": (tricky, tricky), "summary": summary})
    path = tmp_path / "status.yaml"
    status_file.write(path, written)

    expected = yaml.dump(
        status_file.to_dict(written), Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True
    )
    assert path.read_text(encoding="utf-8") == expected
    assert status_file.read(path) == written

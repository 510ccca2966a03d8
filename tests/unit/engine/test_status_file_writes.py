"""The status file and the lock file are replaced whole: a reader polling the file while
another process rewrites it over and over, and then kill -9s it mid-write, only ever reads
a complete document -- never a torn one, never an empty file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

from controller.domain.status import ModelStatus, StatusReport, StatusSummary
from controller.engine import status_file
from controller.manifest.lockfile import LockedFile, LockedModel, LockFile, parse, render
from tests.support.cli import REPO_ROOT

MODELS = 150  # a status of about 100 kB: many write() calls, so a torn read would show
READS = 40
DEADLINE_S = 60.0

# The writer: rewrites the document at ``target`` from ``template`` with a new generation
# each time, forever, until killed.
WRITER = textwrap.dedent(
    """
    import sys
    from controller.engine import status_file
    from controller.manifest.lockfile import parse, render
    from controller.system.atomic import atomic_write_text

    kind, template, target = sys.argv[1:4]
    if kind == "status":
        report = status_file.read(template)
        n = 0
        while True:
            n += 1
            status_file.write(target, report.model_copy(update={"observed_generation": f"g{n}"}))
    else:
        text = open(template).read()
        lock = parse(text, template)
        n = 0
        while True:
            n += 1
            atomic_write_text(target, render(lock, f"m{n}.yaml"))
    """
)


def report() -> StatusReport:
    now = datetime(2026, 11, 26, tzinfo=timezone.utc)
    models = tuple(
        ModelStatus(
            name=f"model-{i:04d}",
            repo=f"org/model-{i:04d}",
            revision="main",
            commit=f"{i:040x}",
            phase="AVAILABLE",
            reason="Verified",
            message="verified " * 20,
            size_on_disk=i * 1000,
            expected_size=i * 1000,
            integrity_score=1.0,
            priority="auto",
            policy="always",
            last_checked=now,
        )
        for i in range(MODELS)
    )
    summary = StatusSummary(
        models=MODELS, phases={"AVAILABLE": MODELS}, size_on_disk=1, expected_size=1, ready=True
    )
    return StatusReport(observedGeneration="g0", updatedAt=now, summary=summary, models=models)


def lock() -> LockFile:
    files = tuple(
        LockedFile(f"shard-{i:05d}.safetensors", i, sha256=f"{i:064x}") for i in range(200)
    )
    entry = LockedModel("org/m", "main", (), (), "c" * 40, files)
    return LockFile({"m": entry})


def start_writer(kind: str, template: Path, target: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(template), str(target)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def poll_while_writing(kind: str, template: Path, target: Path, read: object) -> set[str]:
    """Read ``target`` READS times while a writer rewrites it, kill -9 the writer at the
    last read, read it once more; every read must parse whole.  Returns what was read."""
    writer = start_writer(kind, template, target)
    seen: set[str] = set()
    try:
        end = time.monotonic() + DEADLINE_S
        while not target.exists():
            assert writer.poll() is None, "the writer died before its first write"
            assert time.monotonic() < end, "the writer never wrote"
            time.sleep(0.01)
        for _ in range(READS):
            seen.add(read(target))  # type: ignore[operator]
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=DEADLINE_S)
        seen.add(read(target))  # type: ignore[operator]
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    return seen


def test_a_reader_never_sees_a_torn_status_file(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    status_file.write(template, report())

    def read(path: Path) -> str:
        got = status_file.read(path)
        assert len(got.models) == MODELS and got.models[-1].name == f"model-{MODELS - 1:04d}"
        return got.observed_generation

    generations = poll_while_writing("status", template, tmp_path / "status.yaml", read)
    assert len(generations) > 1  # the reads did overlap the rewrites


def test_a_reader_never_sees_a_torn_lock_file(tmp_path: Path) -> None:
    template = tmp_path / "template.lock.yaml"
    expected = lock()
    template.write_text(render(expected, "m0.yaml"))

    def read(path: Path) -> str:
        text = path.read_text()
        assert parse(text, str(path)) == expected
        return text.splitlines()[0]

    headers = poll_while_writing("lock", template, tmp_path / "m.lock.yaml", read)
    assert len(headers) > 1

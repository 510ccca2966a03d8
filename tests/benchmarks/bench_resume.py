"""Benchmark: bytes re-fetched after ``kill -9`` of ``reconcile --apply`` mid-file.

A 1 GiB file is served by the local hub, which holds the response after ~90 % of it; once
the client has written those bytes, the process is killed with SIGKILL and ``--apply`` runs
again.  The hub's request log gives the resumed range.  Target: re-fetched bytes <= 1 % of
the file + 16 MiB.  Also prints the wall time of the resumed run and of a full download of
the same file for comparison.

    python tests/benchmarks/bench_resume.py [--size-mb 1024] [--at 0.9]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.cli import Workdir  # noqa: E402
from tests.support.hub import LocalHub  # noqa: E402

MIB = 1024 * 1024


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left > 0:
            chunk = os.urandom(min(left, 8 * MIB))
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def wait_for(check: object, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 300
    while not check():  # type: ignore[operator]
        if proc.poll() is not None:
            raise SystemExit(f"reconcile exited before {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--at", type=float, default=0.9)
    args = parser.parse_args()
    size = args.size_mb * MIB
    root = Path(tempfile.mkdtemp(prefix="modelsync-bench-resume-"))
    os.environ.update({"HF_HOME": str(root / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1"})
    try:
        source = root / "model.safetensors"
        sha = write_random(source, size)
        with LocalHub(root / "hub") as hub:
            hub.publish("bench/big", {"model.safetensors": source})
            work = Workdir(root / "work", hub.url)
            work.write_manifest([{"name": "big", "repo": "bench/big"}])
            partial = work.cache / "models--bench--big" / "blobs" / f"{sha}.incomplete"
            held_at = int(size * args.at)
            planned = work.reconcile("--plan")
            if planned.code != 0:
                raise SystemExit(f"plan failed:\n{planned.out}{planned.err}")
            hold = hub.faults.hold("*/model.safetensors", after_bytes=held_at)
            proc = work.start("--apply")
            try:
                wait_for(hold.reached.is_set, proc, "the hold")
                wait_for(
                    lambda: partial.exists() and partial.stat().st_size >= held_at - MIB,
                    proc,
                    "bytes on disk",
                )
            finally:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                hold.release()
            on_disk = partial.stat().st_size
            assert hub.requests
            hub.clear_requests()
            t0 = time.perf_counter()
            run = work.reconcile("--apply")
            resumed_s = time.perf_counter() - t0
            if run.code != 0:
                raise SystemExit(run.out + run.err)
            (get,) = hub.requests_for("*/model.safetensors", "GET")
            assert get.range is not None
            start = int(get.range.removeprefix("bytes=").split("-")[0])
            refetched = max(0, held_at - start)

            fresh = Workdir(root / "fresh", hub.url)
            fresh.write_manifest([{"name": "big", "repo": "bench/big"}])
            t0 = time.perf_counter()
            assert fresh.reconcile("--apply").code == 0
            full_s = time.perf_counter() - t0
        bound = size // 100 + 16 * MIB
        print(f"file {size / MIB:.0f} MiB; hub held after {held_at} bytes ({args.at:.0%})")
        print(f"on disk at kill: {on_disk} bytes; resumed with Range from {start}")
        print(
            f"re-fetched: {refetched} bytes ({refetched / size:.3%} of the file); "
            f"target <= {bound} bytes (1 % + 16 MiB): {'OK' if refetched <= bound else 'MISSED'}"
        )
        print(f"resumed --apply: {resumed_s:.2f} s; full --apply of the same file: {full_s:.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

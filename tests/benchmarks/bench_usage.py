"""Usage bookkeeping cost: ``record_use`` per call, and live status over a busy history.

    python tests/benchmarks/bench_usage.py [--models 1000] [--days 30] [--uses-per-day 10]
                                           [--calls 5000] [--rounds 7] [--json-out F]

Both run against a machine in use, not an empty one: ``--models`` models declared, each in
the cache (a snapshot of two real files, refs/main, blobs) with its files verified, the
hub's answer remembered, and ``--days`` days of history averaging ``--uses-per-day`` uses per
model per day (1,000 x 30 x 10 = 300,000 usage rows by default).

1. ``ModelAvailability.record_use`` -- what an application pays per generation: one
   SQLite transaction in WAL mode, into that history, for a model drawn at random.
   Target: median < 1 ms.
2. ``ModelAvailability.status_report`` -- the live status of every model (what
   ``GET /v1/status`` and each request compute): read the cache, the verifications, the
   hub's remembered answers, the usage aggregates, plan, queue and derive.  Target: median
   < 200 ms.  The usage part alone (SQL aggregation + derivation) is reported too.

Everything runs in a temporary directory; nothing is contacted over the network.  The last
line on stdout is the results as JSON (also written to ``--json-out`` if given).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from controller.api.client import ModelAvailability  # noqa: E402
from controller.domain import (  # noqa: E402
    RemoteFile,
    RemoteRevision,
    Verification,
    usage,  # noqa: E402 - after the path is set when run as a script
)
from controller.store import DB_FILENAME, StateStore  # noqa: E402

RECORD_TARGET_MS = 1.0
STATUS_TARGET_MS = 200.0


def write_manifest(root: Path, models: int) -> Path:
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "bench"},
        "spec": {
            "cache": str(root / "cache"),
            "state": str(root / "state"),
            "endpoint": "http://127.0.0.1:9",
            "models": [
                {
                    "name": f"model-{i:04d}",
                    "repo": f"bench/model-{i:04d}",
                    "policy": "on-demand" if i % 4 == 0 else "always",
                    "tags": [f"family-{i % 10}"],
                }
                for i in range(models)
            ],
        },
    }
    path = root / "models.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # noqa: S324


def model_files(i: int) -> dict[str, bytes]:
    weights = hashlib.sha256(b"%d" % i).digest() * 128  # 4 KiB, different for each model
    return {"config.json": b'{"model_type": "bench", "index": %d}' % i, "model.bin": weights}


def seed_cache(root: Path, store: StateStore, i: int, now: datetime) -> RemoteRevision:
    """Model ``i`` as huggingface_hub lays it out, its blobs verified; the hub's answer."""
    repo, commit = f"bench/model-{i:04d}", f"{i:040x}"
    folder = root / "cache" / f"models--bench--model-{i:04d}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "blobs").mkdir()
    (folder / "snapshots" / commit).mkdir(parents=True)
    remote = []
    for path, content in model_files(i).items():
        lfs = path.endswith(".bin")
        sha256 = hashlib.sha256(content).hexdigest()
        etag = sha256 if lfs else git_blob_id(content)
        blob = folder / "blobs" / etag
        blob.write_bytes(content)
        (folder / "snapshots" / commit / path).symlink_to(f"../../blobs/{etag}")
        st = blob.stat()
        store.record_verification(
            repo, Verification(etag, st.st_size, st.st_mtime_ns, st.st_ino, etag, True, now)
        )
        remote.append(RemoteFile(path, len(content), git_blob_id(content), sha256 if lfs else None))
    return RemoteRevision(repo=repo, revision="main", commit=commit, files=tuple(remote))


def seed_state(
    root: Path, models: int, days: int, uses_per_day: float, now: datetime, rng: random.Random
) -> int:
    """Every model in the cache and verified, the hub's answers remembered, and the usage
    history; returns the usage row count."""
    with StateStore.open(root / "state") as store:
        for i in range(models):
            store.remember_remote(seed_cache(root, store, i, now), now)
    span = days * 86400.0
    rows = []
    for i in range(models):
        rate = rng.uniform(0, 2 * uses_per_day)  # averages uses_per_day over the models
        for _ in range(round(rate * days)):
            at = now - timedelta(seconds=rng.uniform(0, span))
            took = round(rng.uniform(5, 120), 3) if rng.random() < 0.8 else None
            rows.append((f"model-{i:04d}", at.isoformat(timespec="microseconds"), took))
    with sqlite3.connect(root / "state" / DB_FILENAME) as conn:  # bulk: not what is measured
        conn.executemany(
            "INSERT INTO usage_events (model, used_at, generation_seconds) VALUES (?, ?, ?)", rows
        )
        # The daily rollup record_use keeps alongside, built in one statement here.
        conn.execute(
            """
            INSERT INTO usage_days (model, day, uses, timed_uses, generation_total, last_used)
            SELECT model, substr(used_at, 1, 10), COUNT(*), COUNT(generation_seconds),
                   TOTAL(generation_seconds), MAX(used_at)
            FROM usage_events GROUP BY model, substr(used_at, 1, 10)
            """
        )
    return len(rows)


def timed_ms(fn: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per call (CPU time moves less with other load)."""
    wall, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_record_use(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    manifest = write_manifest(root, args.models)
    rng = random.Random(11)
    rows = seed_state(
        root, args.models, args.days, args.uses_per_day, datetime.now(timezone.utc), rng
    )
    names = [f"model-{i:04d}" for i in range(args.models)]
    calls = args.calls
    with ModelAvailability(manifest) as client:
        client.record_use(names[0])  # open the store outside the measurement
        samples = []
        for i in range(calls):
            name = rng.choice(names)
            start = time.perf_counter_ns()
            client.record_use(name, generation_seconds=float(i % 90))
            samples.append((time.perf_counter_ns() - start) / 1e6)
    return {
        "calls": calls,
        "models": args.models,
        "usage_rows_before": rows,
        "median_ms": statistics.median(samples),
        "p95_ms": percentile(samples, 0.95),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": max(samples),
        "target_median_ms": RECORD_TARGET_MS,
    }


def bench_status(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    manifest = write_manifest(root, args.models)
    rows = seed_state(root, args.models, args.days, args.uses_per_day, now, random.Random(7))
    with ModelAvailability(manifest) as client:
        report = client.status_report()  # warm: open the store, page the database in
        assert len(report.models) == args.models
        available = sum(1 for m in report.models if m.phase.value == "AVAILABLE")
        assert available == args.models, f"{available} of {args.models} models AVAILABLE"
        full, full_cpu = timed_ms(client.status_report, args.rounds)
        with StateStore.open(root / "state") as store:

            def usage_only() -> object:
                aggregates = store.usage_aggregates(
                    since=usage.window_start(now, args.days),
                    recent_since=usage.recent_start(now, args.days),
                )
                return usage.derive(aggregates.values(), window_days=args.days)

            usage_part, _ = timed_ms(usage_only, args.rounds)
    used = sum(1 for m in report.models if m.usage_frequency > 0)
    return {
        "models": args.models,
        "days": args.days,
        "usage_rows": rows,
        "models_with_usage": used,
        "rounds": args.rounds,
        "median_ms": statistics.median(full),
        "median_cpu_ms": statistics.median(full_cpu),
        "max_ms": max(full),
        "usage_part_median_ms": statistics.median(usage_part),
        "target_median_ms": STATUS_TARGET_MS,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--models", type=int, default=1000)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--uses-per-day", type=float, default=10.0, help="average per model")
    p.add_argument("--calls", type=int, default=5000, help="record_use calls to time")
    p.add_argument("--rounds", type=int, default=7, help="status computations to time")
    p.add_argument("--json-out", type=Path)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelsync-bench-usage-") as tmp:
        root = Path(tmp)
        (root / "record").mkdir()
        (root / "status").mkdir()
        record = bench_record_use(root / "record", args)
        status = bench_status(root / "status", args)
    ok_record = record["median_ms"] < RECORD_TARGET_MS
    ok_status = status["median_ms"] < STATUS_TARGET_MS
    print(
        f"record_use: median {record['median_ms']:.3f} ms, p95 {record['p95_ms']:.3f} ms, "
        f"p99 {record['p99_ms']:.3f} ms over {record['calls']} calls into "
        f"{record['usage_rows_before']} usage rows of {record['models']} models "
        f"(target: median < {RECORD_TARGET_MS:g} ms) -> {'OK' if ok_record else 'MISSED'}"
    )
    print(
        f"status: median {status['median_ms']:.1f} ms (CPU {status['median_cpu_ms']:.1f} ms) "
        f"for {status['models']} models x "
        f"{status['days']} days ({status['usage_rows']} usage rows), usage part "
        f"{status['usage_part_median_ms']:.1f} ms "
        f"(target: median < {STATUS_TARGET_MS:g} ms) -> {'OK' if ok_status else 'MISSED'}"
    )
    payload = json.dumps(
        {"record_use": record, "status": status, "cpus": os.cpu_count()}, separators=(",", ":")
    )
    if args.json_out:
        args.json_out.write_text(payload + "\n")
    print(payload, flush=True)
    return 0 if ok_record and ok_status else 1


if __name__ == "__main__":
    sys.exit(main())

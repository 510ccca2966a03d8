"""One pass over many models: ``reconcile --apply`` on a cache of ``--models`` small models.

    python tests/benchmarks/bench_pass.py [--models 200] [--new 10] [--rounds 3] [--json-out F]

A pass should cost in proportion to the cache plus the work, not to their product: when a
model's transfer ends mid-pass, its status is re-derived from the disk, and that must read
the model's own repo, not every repo in the cache.  On ``--models`` tiny models already
downloaded and verified (two files each), served by a local ``controller.mirror.server`` hub:

1. ``--plan`` (the baseline): one observation of the whole cache, and a plan;
2. no-op ``--apply``: nothing to do; observation, plan, the final observation and status;
3. small-download ``--apply``: ``--new`` more models declared; their repos are removed from
   the cache before each round, so every round downloads them again;
4. first ``--apply``: all ``--models`` + ``--new`` downloaded into an empty cache (once:
   it sets up the rest), where a whole-cache re-read per model is quadratic.

Each figure is the median of ``--rounds`` runs of the real command in a subprocess (wall
and CPU time from ``wait4``).  The ratios compare each apply with one look at the whole
cache (``--plan``): whole-cache work repeated for each finished model (re-reading every
repo, rewriting every model's status) shows as a ratio that grows with ``--new``.
Everything runs on 127.0.0.1 in a temporary directory.  The last line on stdout is the
results as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench_download import Children, child_env, timed_run  # noqa: E402 - after the path

from controller.mirror.server import HubServer  # noqa: E402
from tests.support.repos import publish, repo_folder  # noqa: E402

PLAN = "--plan (baseline)"
NOOP = "no-op --apply"
SMALL = "small-download --apply"
FIRST = "first --apply"


def repo_id(i: int) -> str:
    return f"bench/model-{i:04d}"


def write_manifest(root: Path, endpoint: str, models: int, *, adopt: bool = False) -> Path:
    """``models`` models of the bench repos; ``adopt``: modelsync owns their files from the
    first apply on, as it owns what it downloads (a pass then reads a record per file)."""
    entries: list[dict[str, object]] = [
        {"name": f"model-{i:04d}", "repo": repo_id(i)} for i in range(models)
    ]
    if adopt:
        for entry in entries:
            entry["adopt"] = True
    doc = {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "bench"},
        "spec": {
            "cache": str(root / "cache"),
            "state": str(root / "state"),
            "endpoint": endpoint,
            "models": entries,
        },
    }
    path = root / "manifest.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def check_available(root: Path, models: int) -> None:
    """A run only counts if every model ended AVAILABLE: a fast failure is not a win."""
    status = yaml.safe_load((root / "state" / "status.yaml").read_text())
    phases = [m["phase"] for m in status["models"]]
    if len(phases) != models or set(phases) != {"AVAILABLE"}:
        raise SystemExit(f"not converged: {len(phases)} models, phases {sorted(set(phases))}")


class Bench:
    def __init__(self, root: Path, endpoint: str, total: int) -> None:
        self.root = root
        self.env = child_env(root / "hf-home", endpoint)
        self.manifest = write_manifest(root, endpoint, total)
        self.total = total
        self.children = Children()
        self.times: dict[str, list[tuple[float, float]]] = {}

    def run(self, name: str, *args: str) -> None:
        """Run ``reconcile`` and time it under ``name``."""
        argv = [sys.executable, "-m", "controller", *args, "-f", str(self.manifest)]
        used = timed_run(self.children, argv, self.env, self.root / "run.log")
        self.times.setdefault(name, []).append((used.seconds, used.cpu_seconds))
        print(f"  {name:<24} {used.seconds:7.2f} s  {used.cpu_seconds:6.2f} s CPU", flush=True)

    def median(self, name: str, which: int = 0) -> float:
        return statistics.median(t[which] for t in self.times[name])


def measure(bench: Bench, models: int, new: int, rounds: int) -> None:
    bench.run(FIRST, "--apply")  # also the setup: every model downloaded and verified
    check_available(bench.root, bench.total)
    for rnd in range(1, rounds + 1):
        print(f"round {rnd}:", flush=True)
        for i in range(models, models + new):
            shutil.rmtree(repo_folder(bench.root / "cache", repo_id(i)))
        bench.run(SMALL, "--apply")
        check_available(bench.root, bench.total)
        bench.run(NOOP, "--apply")
        # --detailed-exitcode fails the run if anything is pending: the apply converged.
        bench.run(PLAN, "--plan", "--detailed-exitcode")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=200, help="models in the cache")
    parser.add_argument("--new", type=int, default=10, help="models the small download adds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    total = args.models + args.new

    with tempfile.TemporaryDirectory(prefix="modelsync-bench-pass-") as tmp:
        root = Path(tmp)
        for i in range(total):
            files = {"config.json": b'{"i": %d}' % i, "model.bin": bytes([i % 256]) * 4096}
            publish(root / "hub", repo_id(i), files)
        hub = HubServer(root / "hub")
        hub.start()
        bench = Bench(root, hub.url, total)
        try:
            measure(bench, args.models, args.new, args.rounds)
        finally:
            bench.children.stop_all()
            hub.stop()

    base = bench.median(PLAN)
    results: dict[str, Any] = {"models": args.models, "new": args.new, "rounds": args.rounds}
    print(f"\n{args.models} models cached, {args.new} downloaded per small-download round")
    print(f"{'run':<24} {'median s':>9} {'CPU s':>7} {'x --plan':>9}")
    for name in (PLAN, NOOP, SMALL, FIRST):
        seconds, cpu = bench.median(name), bench.median(name, 1)
        print(f"{name:<24} {seconds:9.2f} {cpu:7.2f} {seconds / base:8.2f}x")
        results[name] = {"median_s": seconds, "median_cpu_s": cpu, "ratio_to_plan": seconds / base}
    print(json.dumps(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Many small models: a first apply against a ``snapshot_download`` loop, and how a pass over
a cache of many models grows with their number.

    python tests/benchmarks/bench_many_models.py [--models 200] [--curve 100,250,500,1000]
        [--files 50] [--rounds 3] [--json-out F]

1. **first apply**: ``--models`` tiny models (``config.json`` + 1 MiB of weights) downloaded
   into an empty cache, by one ``python -c`` process looping ``snapshot_download`` over the
   repos and by ``reconcile --apply``, alternately, ``--rounds`` times each, each run into a
   fresh directory.  The target: modelsync at most 0.5x the loop.
2. **the curve**: for each count in ``--curve``, a cache of that many models of ``--files``
   small files each, already downloaded and verified, timed with ``--plan`` and a no-op
   ``--apply`` (targets at 1,000 models x 50 files: < 2 s and < 2.5 s, peak RSS < 200 MB).
   The cache is written directly in the client's layout (no download), grown from one count
   to the next, and verified and adopted by one ``--apply`` per step that counts as set-up,
   not result: modelsync owns every file, as it owns what it downloads, so a pass reads an
   ownership record per file, as it would after downloading them.

Every contestant runs as a whole process against one hub process (``reconcile serve``) per
scenario on 127.0.0.1; wall time, CPU time and peak RSS come from ``wait4``.  A table is
printed, and the medians are the last line on stdout as JSON (also ``--json-out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench_download import (  # noqa: E402 - after the path
    Children,
    Usage,
    child_env,
    free_port,
    timed_run,
    wait_ready,
)
from bench_pass import repo_id, write_manifest  # noqa: E402 - the same models and manifest

from controller.cache import layout  # noqa: E402
from controller.cache.hashing import HashKind, digest_bytes  # noqa: E402
from tests.support.repos import commit_id, publish  # noqa: E402

MIB = 1024 * 1024
LOOP_CODE = (
    "import sys\n"
    "from huggingface_hub import snapshot_download\n"
    "for repo in sys.argv[3:]:\n"
    "    snapshot_download(repo, cache_dir=sys.argv[1], endpoint=sys.argv[2])\n"
)
LOOP = "snapshot_download loop"
APPLY = "reconcile --apply"
PLAN = "--plan"
NOOP = "no-op --apply"


def write_small_repos(caches: list[Path], first: int, last: int, files: int) -> None:
    """Models ``first..last-1`` of ``files`` small git files each, in every cache of
    ``caches``, in the layout huggingface_hub writes.  Written directly, without fsync or
    atomic renames: tens of thousands of files must take seconds, and a benchmark's fixture
    needs no crash safety."""
    for i in range(first, last):
        contents = {f"f{j:02d}.json": b'{"model": %d, "file": %d}' % (i, j) for j in range(files)}
        etags = {p: digest_bytes(data, HashKind.GIT_BLOB_SHA1) for p, data in contents.items()}
        commit = commit_id(None, etags, "")
        for cache in caches:
            folder = layout.repo_folder(cache, repo_id(i))
            (folder / "blobs").mkdir(parents=True)
            (folder / "snapshots" / commit).mkdir(parents=True)
            (folder / "refs").mkdir()
            for path, data in contents.items():
                (folder / "blobs" / etags[path]).write_bytes(data)
                os.symlink(f"../../blobs/{etags[path]}", folder / "snapshots" / commit / path)
            (folder / "refs" / "main").write_text(commit)


class Runner:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.children = Children()
        self.times: dict[tuple[str, int], list[Usage]] = {}

    def start_hub(self, hub_dir: Path, probe_repo: str) -> str:
        port = free_port()
        argv = [sys.executable, "-m", "controller", "serve", str(hub_dir), "--port", str(port)]
        log = self.root / f"hub-{port}.log"
        proc = self.children.start(argv, child_env(self.root / "hf-home", ""), log)
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, f"{url}/api/models/{probe_repo}", log)
        return url

    def run(self, name: str, count: int, argv: list[str], endpoint: str) -> Usage:
        env = child_env(self.root / "hf-home", endpoint)
        used = timed_run(self.children, argv, env, self.root / "run.log")
        self.times.setdefault((name, count), []).append(used)
        print(
            f"  {name:<24} {count:5d} models {used.seconds:7.2f} s {used.cpu_seconds:6.2f} s CPU "
            f"{used.peak_rss_mib:6.0f} MiB",
            flush=True,
        )
        return used

    def median(self, name: str, count: int, field: str = "seconds") -> float:
        return statistics.median(getattr(u, field) for u in self.times[(name, count)])


def reconcile_argv(mode: str, manifest: Path) -> list[str]:
    return [sys.executable, "-m", "controller", mode, "-f", str(manifest)]


def first_apply(runner: Runner, models: int, rounds: int) -> dict[str, Any]:
    scenario = runner.root / "first"
    for i in range(models):
        weights = os.urandom(MIB)
        publish(scenario / "hub", repo_id(i), {"config.json": b"{}", "model.safetensors": weights})
    url = runner.start_hub(scenario / "hub", repo_id(0))
    repos = [repo_id(i) for i in range(models)]
    for rnd in range(1, rounds + 1):
        print(f"first apply, round {rnd}:", flush=True)
        fresh = scenario / f"round-{rnd}"
        loop_argv = [sys.executable, "-c", LOOP_CODE, str(fresh / "hf"), url, *repos]
        runner.run(LOOP, models, loop_argv, url)
        manifest = write_manifest(fresh, url, models)
        runner.run(APPLY, models, reconcile_argv("--apply", manifest), url)
        check_available(fresh, models)
        shutil.rmtree(fresh)
    loop, apply = runner.median(LOOP, models), runner.median(APPLY, models)
    # The machine may be shared: its load says how far the times can be trusted.
    load = os.getloadavg()[0]
    print(f"\n{models} tiny models, first apply (medians of {rounds}; load average {load:.1f})")
    print(f"{'contestant':<24} {'s':>8} {'min-max s':>12} {'CPU s':>7} {'x loop':>8}")
    for name in (LOOP, APPLY):
        runs = [u.seconds for u in runner.times[(name, models)]]
        cpu = runner.median(name, models, "cpu_seconds")
        spread = f"{min(runs):.2f}-{max(runs):.2f}"
        median = runner.median(name, models)
        print(f"{name:<24} {median:8.2f} {spread:>12} {cpu:7.2f} {median / loop:8.2f}")
    return {
        "models": models,
        LOOP: loop,
        APPLY: apply,
        "ratio": apply / loop,
        "cpu_s": {name: runner.median(name, models, "cpu_seconds") for name in (LOOP, APPLY)},
        "load_average": load,
    }


def curve(runner: Runner, counts: list[int], files: int, rounds: int) -> dict[str, Any]:
    scenario = runner.root / "curve"
    (scenario / "hub").mkdir(parents=True)
    write_small_repos([scenario / "hub"], 0, max(counts), files)
    url = runner.start_hub(scenario / "hub", repo_id(0))
    built = 0
    results: dict[str, Any] = {"files_per_model": files}
    for count in sorted(counts):
        started = time.perf_counter()
        write_small_repos([scenario / "cache"], built, count, files)
        built = count
        manifest = write_manifest(scenario, url, count, adopt=True)
        runner.run("set-up (verify new)", count, reconcile_argv("--apply", manifest), url)
        check_available(scenario, count)
        # Owned from here on, as if downloaded; without `adopt: true` no pass records it again.
        manifest = write_manifest(scenario, url, count)
        print(f"  set-up of {count} models: {time.perf_counter() - started:.1f} s", flush=True)
        for _ in range(rounds):
            plan_argv = [*reconcile_argv("--plan", manifest), "--detailed-exitcode"]
            runner.run(PLAN, count, plan_argv, url)
            runner.run(NOOP, count, reconcile_argv("--apply", manifest), url)
        results[str(count)] = {
            name: {
                "median_s": runner.median(name, count),
                "median_cpu_s": runner.median(name, count, "cpu_seconds"),
                "peak_rss_mib": max(u.peak_rss_mib for u in runner.times[(name, count)]),
            }
            for name in (PLAN, NOOP)
        }
    print(f"\ncached models x {files} files (medians of {rounds})")
    print(f"{'models':>7} {'--plan s':>9} {'no-op s':>8} {'plan MiB':>9} {'no-op MiB':>10}")
    for count in sorted(counts):
        row = results[str(count)]
        print(
            f"{count:7d} {row[PLAN]['median_s']:9.2f} {row[NOOP]['median_s']:8.2f} "
            f"{row[PLAN]['peak_rss_mib']:9.0f} {row[NOOP]['peak_rss_mib']:10.0f}"
        )
    return results


def check_available(root: Path, models: int) -> None:
    """A run only counts if every model ended AVAILABLE: a fast failure is not a win."""
    status = yaml.safe_load((root / "state" / "status.yaml").read_text())
    phases = [m["phase"] for m in status["models"]]
    if len(phases) != models or set(phases) != {"AVAILABLE"}:
        raise SystemExit(f"not converged: {len(phases)} models, phases {sorted(set(phases))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--models", type=int, default=200, help="models of the first apply")
    parser.add_argument("--curve", default="100,250,500,1000", help="cached model counts")
    parser.add_argument("--files", type=int, default=50, help="files per cached model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    counts = [int(c) for c in args.curve.split(",") if c]

    with tempfile.TemporaryDirectory(prefix="modelsync-bench-many-") as tmp:
        runner = Runner(Path(tmp))
        try:
            results = {
                "first_apply": first_apply(runner, args.models, args.rounds) if args.models else {},
                "curve": curve(runner, counts, args.files, args.rounds) if counts else {},
            }
        finally:
            runner.children.stop_all()
    print(json.dumps(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

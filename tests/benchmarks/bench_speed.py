"""The speed targets in one run: every scenario, side by side, and one table of verdicts.

    python tests/benchmarks/bench_speed.py [--rounds 3] [--models 200]
        [--curve 100,250,500,1000] [--only loopback,capped,tiny,curve,startup] [--json-out F]

1. **loopback**: 4 x 256 MiB over 127.0.0.1 -- parallel ``curl``, ``snapshot_download`` and
   ``reconcile --apply`` (download + sha256); targets >= 2x snapshot_download, >= 0.6x curl.
2. **capped**: 1 x 512 MiB from a hub that limits each response to 50 MB/s; target >= 3.5x
   snapshot_download (modelsync fetches it as ranges over several connections).
3. **tiny**: first apply of ``--models`` tiny models against a ``snapshot_download`` loop over
   them; target <= 0.5x the loop.
4. **curve**: ``--plan`` and a no-op ``--apply`` over caches of 100 ... 1,000 models of 50
   files; targets at 1,000: < 2 s, < 2.5 s, peak RSS < 200 MB.
5. **startup**: ``--plan`` and ``verify`` of one cached model (reported, no target).

Each scenario is the benchmark of its own module (bench_download, bench_many_models), run here
one after the other: every contestant is a whole process, timed with ``wait4``, alternating
round by round against one hub process per scenario on 127.0.0.1.  Each module's table is
printed as it finishes; then the verdicts, and the medians as JSON (last line on stdout, and
``--json-out``).  No outside host is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_download  # noqa: E402 - after the path
import bench_many_models  # noqa: E402
from bench_pass import repo_id, write_manifest  # noqa: E402

SCENARIOS = ("loopback", "capped", "tiny", "curve", "startup")
VERIFY = "verify"


@dataclass(frozen=True)
class Verdict:
    scenario: str
    measure: str
    value: float
    target: str
    met: bool


def run_download(name: str, rounds: int, say: Callable[[str], None]) -> dict[str, Any]:
    args = bench_download.parse_args(["--scenario", name, "--rounds", str(rounds)])
    bench_download.check_free_space(args.workdir, args.size_mb * bench_download.MIB)
    root = Path(tempfile.mkdtemp(prefix=f"modelsync-bench-{name}-", dir=args.workdir))
    children = bench_download.Children()
    try:
        results = bench_download.benchmark(args, root, children, say)
    finally:
        children.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    say("\n" + bench_download.format_table(results) + "\n")
    return results.summary()


def run_startup(runner: bench_many_models.Runner, rounds: int) -> dict[str, Any]:
    """One cached model of a few files: what a command costs before it has work to do."""
    scenario = runner.root / "startup"
    bench_many_models.write_small_repos([scenario / "hub", scenario / "cache"], 0, 1, 5)
    url = runner.start_hub(scenario / "hub", repo_id(0))
    manifest = write_manifest(scenario, url, 1)
    apply = bench_many_models.reconcile_argv("--apply", manifest)
    runner.run("set-up (verify new)", 1, apply, url)
    for _ in range(rounds):
        plan = [*bench_many_models.reconcile_argv("--plan", manifest), "--detailed-exitcode"]
        runner.run(bench_many_models.PLAN, 1, plan, url)
        verify = [sys.executable, "-m", "controller", "verify", "-f", str(manifest)]
        runner.run(VERIFY, 1, verify, url)
    return {
        name: {
            "median_s": runner.median(name, 1),
            "min_s": min(u.seconds for u in runner.times[(name, 1)]),
            "max_s": max(u.seconds for u in runner.times[(name, 1)]),
            "median_cpu_s": runner.median(name, 1, "cpu_seconds"),
        }
        for name in (bench_many_models.PLAN, VERIFY)
    }


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    found: list[Verdict] = []
    if loop := results.get("loopback"):
        hf, curl = loop["ratio_modelsync_over_baseline"], loop["ratio_modelsync_over_curl"]
        found.append(Verdict("loopback", "x snapshot_download", hf, ">= 2.0", hf >= 2.0))
        found.append(Verdict("loopback", "x parallel curl", curl, ">= 0.6", curl >= 0.6))
    if capped := results.get("capped"):
        hf = capped["ratio_modelsync_over_baseline"]
        found.append(Verdict("capped", "x snapshot_download", hf, ">= 3.5", hf >= 3.5))
    if tiny := results.get("tiny"):
        # A ratio of times: below 1 is faster than the loop.
        ratio = tiny["ratio"]
        found.append(Verdict("tiny", "time / loop's time", ratio, "<= 0.5", ratio <= 0.5))
    if (curve := results.get("curve")) and "1000" in curve:
        at = curve["1000"]
        plan, noop = at[bench_many_models.PLAN], at[bench_many_models.NOOP]
        rss = max(plan["peak_rss_mib"], noop["peak_rss_mib"])
        found.append(
            Verdict("1,000 cached", "--plan s", plan["median_s"], "< 2", plan["median_s"] < 2)
        )
        found.append(
            Verdict(
                "1,000 cached", "no-op --apply s", noop["median_s"], "< 2.5", noop["median_s"] < 2.5
            )
        )
        found.append(Verdict("1,000 cached", "peak RSS MiB", rss, "< 200", rss < 200))
    return found


def format_verdicts(found: list[Verdict]) -> str:
    lines = [f"{'scenario':<14} {'measure':<22} {'value':>8} {'target':>8}  verdict"]
    for v in found:
        verdict = "OK" if v.met else "BELOW TARGET"
        lines.append(f"{v.scenario:<14} {v.measure:<22} {v.value:8.2f} {v.target:>8}  {verdict}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", type=int, default=200, help="tiny models of the first apply")
    parser.add_argument("--curve", default="100,250,500,1000", help="cached model counts")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    args.only = [s for s in args.only.split(",") if s]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown or args.rounds < 1:
        parser.error(f"--only takes {', '.join(SCENARIOS)}; --rounds must be positive")
    return args


def main() -> int:
    args = parse_args()
    say: Callable[[str], None] = lambda s: print(s, flush=True)  # noqa: E731
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rounds": args.rounds,
    }
    for name in ("loopback", "capped"):
        if name in args.only:
            say(f"== {name} ==")
            results[name] = run_download(name, args.rounds, say)
    with tempfile.TemporaryDirectory(prefix="modelsync-bench-speed-") as tmp:
        runner = bench_many_models.Runner(Path(tmp))
        try:
            if "tiny" in args.only:
                say("== tiny ==")
                results["tiny"] = bench_many_models.first_apply(runner, args.models, args.rounds)
            if "curve" in args.only:
                say("== curve ==")
                counts = [int(c) for c in args.curve.split(",") if c]
                results["curve"] = bench_many_models.curve(runner, counts, 50, args.rounds)
            if "startup" in args.only:
                say("== startup ==")
                results["startup"] = run_startup(runner, args.rounds)
        finally:
            runner.children.stop_all()
    if startup := results.get("startup"):
        say("\none cached model (start-up), medians:")
        for name, row in startup.items():
            say(f"  {name:<10} {row['median_s']:.2f} s ({row['min_s']:.2f}-{row['max_s']:.2f})")
    found = verdicts(results)
    results["verdicts"] = [v.__dict__ for v in found]
    results["load_average"] = os.getloadavg()[0]
    say("\n" + format_verdicts(found))
    payload = json.dumps(results)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    print(payload)
    return 0 if all(v.met for v in found) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The long-running controller at rest, and how fast it reacts to a manifest edit.

    python tests/benchmarks/bench_watch.py [--models 50] [--seconds 60] [--edits 10]
                                           [--update-check 20s] [--health-check 30s]
                                           [--json-out F]

1. Idle cost: ``reconcile --watch`` with ``--models`` models declared (all downloaded, so
   there is nothing to do), measured from ``/proc`` over ``--seconds``: CPU time / wall
   time, and resident memory (largest sample, and the kernel's high-water mark).  Targets:
   < 1 % CPU, < 100 MB.  The schedule is the default but for the update check and the
   health check, brought into the window (``--update-check``, ``--health-check``), so the
   idle figure includes what they cost; each one's own duration (from its event on
   ``GET /v1/events``) is reported beside.
2. Reaction: save the manifest (an atomic rename, as editors do) ``--edits`` times and time
   each save to the start of the pass it causes -- the ``reconcile`` event with trigger
   ``manifest`` on ``GET /v1/events``.  Target: < 2 s.

The hub is a local ``controller.mirror.server`` hub in this process, over tiny real model repos;
only the controller's process is measured.  Linux only (/proc).  The last line on stdout is
the results as JSON (also written to ``--json-out`` if given).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from controller.api.events import Follower  # noqa: E402 - after the path is set
from controller.mirror.server import HubServer  # noqa: E402
from tests.support.repos import publish  # noqa: E402

CPU_TARGET_PERCENT = 1.0
RSS_TARGET_MB = 100.0
LATENCY_TARGET_S = 2.0
TICKS = os.sysconf("SC_CLK_TCK")


def manifest(
    root: Path, endpoint: str, models: int, priority: str, schedule: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "modelsync/v1",
        "kind": "ModelSet",
        "metadata": {"name": "bench"},
        "spec": {
            "cache": str(root / "cache"),
            "state": str(root / "state"),
            "endpoint": endpoint,
            "controller": {"port": 0, **schedule},  # the other intervals at their defaults
            "models": [
                {"name": f"model-{i:03d}", "repo": f"bench/model-{i:03d}", "priority": priority}
                for i in range(models)
            ],
        },
    }


def save(path: Path, doc: dict[str, Any]) -> float:
    """Write ``doc`` the way editors save: a new file renamed over the old; when it landed."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(temp, path)
    return time.time()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def wait_for(condition: Any, what: str, deadline: float = 120.0) -> Any:
    end = time.monotonic() + deadline
    while not (value := condition()):
        if time.monotonic() > end:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.1)
    return value


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--update-check", default="20s", help="update_check_interval")
    parser.add_argument("--health-check", default="30s", help="health_check_interval")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    schedule = {
        "update_check_interval": args.update_check,
        "health_check_interval": args.health_check,
    }

    with tempfile.TemporaryDirectory(prefix="modelsync-bench-watch-") as tmp:
        root = Path(tmp)
        for i in range(args.models):
            weights = bytes([i % 256]) * 4096
            files = {"config.json": b'{"i": %d}' % i, "model.bin": weights}
            publish(root / "hub", f"bench/model-{i:03d}", files)
        hub = HubServer(root / "hub")
        hub.start()
        manifests = root / "manifests"
        manifests.mkdir()
        path = manifests / "models.yaml"
        save(path, manifest(root, hub.url, args.models, "high", schedule))
        log = (root / "controller.log").open("wb")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "HF_HOME": str(root / "hf-home"),  # leave the user's token and caches alone
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "--watch", "-f", str(manifests)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        try:
            info = root / "state" / "controller.json"
            url = wait_for(lambda: info.exists() and json.loads(info.read_text())["url"], "the API")
            started = time.monotonic()
            wait_for(lambda: ready(url), f"{args.models} models to be available")
            print(
                f"{args.models} models downloaded and verified in "
                f"{time.monotonic() - started:.1f} s",
                file=sys.stderr,
            )
            time.sleep(2.0)  # let the first pass's status writes and threads settle

            # 1. idle, with the scheduled work that falls in the window
            scheduled: dict[str, list[float]] = {"update-check": [], "health-check": []}

            def on_scheduled(event: dict[str, Any]) -> None:
                if event.get("kind") == "health":
                    scheduled["health-check"].append(float(event["seconds"]))
                elif (
                    event.get("kind") == "reconcile"
                    and event.get("state") == "finished"
                    and "update-check" in event["triggers"]
                ):
                    scheduled["update-check"].append(float(event["seconds"]))

            with Follower(url, on_scheduled) as watcher:
                wait_for(watcher.connected.is_set, "the event stream")
                cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
                rss_samples = []
                while time.monotonic() - wall0 < args.seconds:
                    rss_samples.append(memory_kb(proc.pid, "VmRSS"))
                    time.sleep(1.0)
                wall = time.monotonic() - wall0
            cpu_percent = 100 * (cpu_seconds(proc.pid) - cpu0) / wall
            rss_mb = max(rss_samples) / 1024
            peak_mb = memory_kb(proc.pid, "VmHWM") / 1024

            # 2. reaction to a save
            starts: list[float] = []
            finished: list[float] = []
            arrived = threading.Condition()

            def on_event(event: dict[str, Any]) -> None:
                if event.get("kind") != "reconcile" or "manifest" not in event["triggers"]:
                    return
                with arrived:
                    (starts if event["state"] == "started" else finished).append(time.time())
                    arrived.notify_all()

            latencies = []
            with Follower(url, on_event) as follower:
                wait_for(follower.connected.is_set, "the event stream")
                for edit in range(args.edits):
                    seen = len(starts)
                    saved = save(
                        path,
                        manifest(root, hub.url, args.models, ("low", "high")[edit % 2], schedule),
                    )
                    with arrived:
                        if not arrived.wait_for(lambda n=seen: len(starts) > n, timeout=30):
                            raise SystemExit("no pass followed the save")
                        latencies.append(starts[-1] - saved)
                        # Let that pass end, so each save is timed from an idle controller.
                        arrived.wait_for(lambda n=seen: len(finished) > n, timeout=120)
        finally:
            proc.terminate()
            proc.wait(30)
            hub.stop()
            log.close()

    results = {
        "models": args.models,
        "idle_seconds": round(wall, 1),
        "idle_cpu_percent": round(cpu_percent, 3),
        "idle_rss_mb": round(rss_mb, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "update_checks_in_window": len(scheduled["update-check"]),
        "update_check_seconds": scheduled["update-check"],
        "health_checks_in_window": len(scheduled["health-check"]),
        "health_check_seconds": scheduled["health-check"],
        "save_to_plan_median_s": round(statistics.median(latencies), 3),
        "save_to_plan_max_s": round(max(latencies), 3),
    }
    print(
        f"idle over {wall:.0f} s with {args.models} models: {cpu_percent:.2f} % CPU "
        f"(target < {CPU_TARGET_PERCENT:g} %), RSS {rss_mb:.1f} MB, peak {peak_mb:.1f} MB "
        f"(target < {RSS_TARGET_MB:g} MB)"
    )
    for what, took in scheduled.items():
        print(
            f"  of which {len(took)} {what}s in the window, "
            f"{', '.join(f'{s:.2f} s' for s in took) or 'none'}"
        )
    print(
        f"manifest save -> plan start over {len(latencies)} saves: median "
        f"{statistics.median(latencies):.3f} s, max {max(latencies):.3f} s "
        f"(target < {LATENCY_TARGET_S:g} s)"
    )
    print(json.dumps(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    ok = (
        cpu_percent < CPU_TARGET_PERCENT
        and peak_mb < RSS_TARGET_MB
        and max(latencies) < LATENCY_TARGET_S
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

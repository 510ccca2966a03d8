"""Download throughput: parallel ``curl``, ``snapshot_download`` and ``reconcile --apply``.

modelsync sha256-verifies every byte it downloads (``snapshot_download`` checks only sizes)
and keeps books (observe, plan, SQLite, status). This benchmark measures what that costs
end to end on a repo served by ``reconcile serve`` over loopback, against parallel ``curl``
(one per file, writing to disk: what the wire and the disk carry) and ``snapshot_download``.
All three run as whole processes, alternately, against the same hub process, each into a
fresh directory. Over loopback the client is CPU-bound, so this is the worst case for
verification: on a real network the CPU it needs is mostly idle anyway.

    python tests/benchmarks/bench_download.py [--size-mb 1024] [--shards 4] [--rounds 3]
        [--hub-limit-mbps 50] [--json-out F]

``--hub-limit-mbps`` serves through the tests' hub with every response throttled to that many
MB/s (as a CDN caps each connection), e.g. ``--size-mb 512 --shards 1 --hub-limit-mbps 50``.
``--scenario`` names the two cases the targets are set for: ``loopback`` (4 x 256 MiB, no
limit) and ``capped`` (1 x 512 MiB, each response limited to 50 MB/s: modelsync fetches the
file as byte ranges over several connections, the others over one).

Everything runs against a local server on 127.0.0.1; no outside host is contacted. The
last line on stdout is the results as JSON (also written to ``--json-out`` if given).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.support import repos  # noqa: E402 - after the path is set

REPO_ID = "bench/model"
MIB = 1024 * 1024
WRITE_CHUNK = 16 * MIB  # random data is generated and written in chunks, never held whole
READY_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 1800.0  # a hung child is killed, so the benchmark fails instead of hanging
SPACE_FACTOR = 3  # seed + one run's cache + headroom (staging files exist only while seeding)
BYTECODE_CACHE = Path(tempfile.gettempdir()) / "modelsync-bench-bytecode"

BASELINE_CODE = (
    "import sys\n"
    "from huggingface_hub import snapshot_download\n"
    "snapshot_download(sys.argv[1], cache_dir=sys.argv[2], endpoint=sys.argv[3])\n"
)

BASELINE = "snapshot_download"
CURL = "parallel curl"
MODELSYNC = "reconcile --apply"
NOOP_APPLY = "no-op --apply"
PLAN = "--plan (in sync)"


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    name: str
    round: int
    seconds: float
    cpu_seconds: float  # user + system of the child: less sensitive to other load than wall time
    peak_rss_mib: float
    mib_per_s: float | None  # None for runs that transfer nothing


@dataclass
class Results:
    size_bytes: int
    files: int
    rounds: int
    cpus: int
    hub_limit_mbps: float | None = None
    # 1-minute load averages before and after measuring: other work on the machine is the
    # usual reason for an outlier round, and this is how a reader of the table can tell.
    load: list[float] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)

    def of(self, name: str) -> list[RunResult]:
        return [r for r in self.runs if r.name == name]

    def median_seconds(self, name: str) -> float:
        return statistics.median(r.seconds for r in self.of(name))

    def median_rss(self, name: str) -> float:
        return statistics.median(r.peak_rss_mib for r in self.of(name))

    def median_cpu(self, name: str) -> float:
        return statistics.median(r.cpu_seconds for r in self.of(name))

    def throughput(self, name: str) -> float:
        # From the median time, so one slow round cannot drag the mean of rates down.
        return self.size_bytes / MIB / self.median_seconds(name)

    def ratio(self, against: str = BASELINE) -> float:
        return self.throughput(MODELSYNC) / self.throughput(against)

    def cpu_ratio(self) -> float:
        """Baseline CPU / modelsync CPU. Over loopback the client is CPU-bound, so this is
        the cost that wall time shows; it moves less than wall time with other load."""
        return self.median_cpu(BASELINE) / self.median_cpu(MODELSYNC)

    def summary(self) -> dict[str, object]:
        names = [CURL, BASELINE, MODELSYNC, NOOP_APPLY, PLAN]
        medians = {
            n: {
                "median_s": self.median_seconds(n),
                "median_cpu_s": self.median_cpu(n),
                "peak_rss_mib": self.median_rss(n),
            }
            for n in names
            if self.of(n)
        }
        for n in (CURL, BASELINE, MODELSYNC):
            if self.of(n):
                medians[n]["mib_per_s"] = self.throughput(n)
                times = [r.seconds for r in self.of(n)]
                medians[n]["min_s"], medians[n]["max_s"] = min(times), max(times)
        return {
            "size_bytes": self.size_bytes,
            "files": self.files,
            "rounds": self.rounds,
            "cpus": self.cpus,
            "load": self.load,
            "medians": medians,
            "hub_limit_mbps": self.hub_limit_mbps,
            "ratio_modelsync_over_baseline": self.ratio(),
            "ratio_modelsync_over_curl": self.ratio(CURL) if self.of(CURL) else None,
            "cpu_ratio_baseline_over_modelsync": self.cpu_ratio(),
            "runs": [asdict(r) for r in self.runs],
        }


# --- building the repo -----------------------------------------------------------------------


def random_chunks(total: int) -> Iterator[bytes]:
    """Incompressible bytes, so no layer (page cache, TCP) can shortcut the transfer."""
    try:
        import numpy as np
    except ImportError:  # numpy is a test extra; os.urandom is slower but always there
        while total > 0:
            yield os.urandom(min(WRITE_CHUNK, total))
            total -= WRITE_CHUNK
        return
    rng = np.random.default_rng()
    while total > 0:
        yield rng.bytes(min(WRITE_CHUNK, total))
        total -= WRITE_CHUNK


def write_random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        for chunk in random_chunks(size):
            out.write(chunk)
    return path


def small_files(shard_names: Sequence[str], shard_size: int) -> dict[str, bytes]:
    """The json files a real checkpoint has; they exercise the git-sha1 (non-LFS) path."""
    index = {
        "metadata": {"total_size": shard_size * len(shard_names)},
        "weight_map": {f"layer.{i}.weight": name for i, name in enumerate(shard_names)},
    }
    docs: dict[str, object] = {
        "config.json": {"model_type": "bench", "hidden_size": 4096, "num_layers": 32},
        "generation_config.json": {"max_new_tokens": 128},
        "tokenizer_config.json": {"model_max_length": 4096},
        "model.safetensors.index.json": index,
    }
    return {name: json.dumps(doc, indent=2).encode() for name, doc in docs.items()}


def build_seed(root: Path, size: int, shards: int) -> tuple[Path, int, int]:
    """Publish the repo into ``root/seed``; returns (seed dir, total bytes, file count).

    Shards are written to a staging dir and handed to ``publish`` as Paths (it streams
    them); staging is deleted right after, so the peak on disk is 2x the size, briefly.
    """
    staging = root / "staging"
    staging.mkdir()
    shard_size = size // shards
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    files: dict[str, bytes | Path] = {
        name: write_random_file(staging / name, shard_size) for name in names
    }
    files.update(small_files(names, shard_size))
    seed_dir = root / "seed"
    repos.publish(seed_dir, REPO_ID, files)
    shutil.rmtree(staging)
    total = sum(len(v) if isinstance(v, bytes) else shard_size for v in files.values())
    return seed_dir, total, len(files)


def check_free_space(directory: Path, size: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < SPACE_FACTOR * size:
        raise SystemExit(
            f"error: {directory} has {free / MIB:.0f} MiB free; this benchmark needs "
            f"{SPACE_FACTOR}x the repo size ({SPACE_FACTOR * size / MIB:.0f} MiB). "
            "Use --size-mb to shrink it or --workdir to point at a bigger disk."
        )


# --- processes -------------------------------------------------------------------------------


class Children:
    """Every process this benchmark started, so ``finally`` can stop exactly those."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        # Output goes to a file, not a pipe: nothing must read pipes while we sit in wait4,
        # and a child blocked on a full pipe would be timed as slow.
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # `reconcile serve` stops cleanly on SIGTERM
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def log_tail(log: Path, lines: int = 30) -> str:
    """The end of a child's output: where the error is, without pages of retries above it."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    # The OS picks an unused port; the tiny race until the server binds it is acceptable
    # because readiness polling fails loudly if someone else took it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(hf_home: Path, endpoint: str) -> dict[str, str]:
    """The same environment for both contenders, pinned to the local server."""
    env = {k: v for k, v in os.environ.items() if not _is_outbound_setting(k)}
    # Installed software runs from compiled bytecode (pip compiles it at install time): with
    # PYTHONDONTWRITEBYTECODE inherited, every run of a source checkout would compile its
    # modules again.  The caches go beside the benchmark's own files, not into the tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(BYTECODE_CACHE))
    _compile_once(env["PYTHONPYCACHEPREFIX"])
    env.update(
        {
            "HF_HOME": str(hf_home),
            "HF_ENDPOINT": endpoint,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # modelsync turns progress bars off itself; the baseline must not pay for them either.
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return env


@functools.cache
def _compile_once(prefix: str) -> None:
    """Compile modelsync before the first timed run, so that no contestant pays for it."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": prefix}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    argv = [sys.executable, "-m", "compileall", "-q", "controller", "reconcilers"]
    subprocess.run(argv, cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def _is_outbound_setting(name: str) -> bool:
    """Proxies could route loopback elsewhere; tokens have no business in a local benchmark."""
    upper = name.upper()
    return upper.endswith("_PROXY") or upper in {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}


# The tests' hub with every response throttled: a hub or CDN that caps each connection.
THROTTLED_HUB_CODE = (
    "import sys, threading\n"
    "from tests.support.faults import FaultInjectingHubServer\n"
    "hub = FaultInjectingHubServer(sys.argv[1], '127.0.0.1', int(sys.argv[2]))\n"
    "hub.faults.throttle('*/resolve/*', int(sys.argv[3]), times=None)\n"
    "hub.start()\n"
    "threading.Event().wait()\n"
)


def start_server(
    children: Children,
    seed_dir: Path,
    env: dict[str, str],
    log: Path,
    limit_bytes_per_s: int | None = None,
) -> str:
    """``reconcile serve`` in its own process, so server and client never share a GIL."""
    port = free_port()
    if limit_bytes_per_s is None:
        argv = [sys.executable, "-m", "controller", "serve", str(seed_dir)]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
    else:
        argv = [sys.executable, "-c", THROTTLED_HUB_CODE, str(seed_dir), str(port)]
        argv.append(str(limit_bytes_per_s))
    proc = children.start(argv, env, log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, f"{url}/api/models/{REPO_ID}", log)
    return url


def wait_ready(proc: subprocess.Popen[bytes], probe: str, log: Path) -> None:
    # An explicit empty ProxyHandler: the probe must hit loopback even if a proxy is set.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_tail(log)}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            opener.open(probe, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready within {READY_TIMEOUT_S:.0f}s:\n{log_tail(log)}")


@dataclass(frozen=True)
class Usage:
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def timed_run(children: Children, argv: Sequence[str], env: dict[str, str], log: Path) -> Usage:
    """Run a child to completion and measure its wall time, CPU time and peak RSS.

    Peak RSS comes from ``os.wait4`` on the child's pid, which returns the rusage of that
    one child: ``getrusage(RUSAGE_CHILDREN)`` is a high-water mark over *all* reaped
    children, so deltas hide any run smaller than an earlier one; ``/usr/bin/time -v`` is
    not installed everywhere and its report must be parsed out of the child's stderr; a
    Python launcher measuring itself would count its own imports and could not measure the
    console script as users run it. wait4 needs nothing extra and measures exactly the child.
    """
    started = time.perf_counter()
    proc = children.start(argv, env, log)
    # wait4 has no timeout; a timer kills the child instead (its pid is not reaped yet, so
    # it cannot have been reused).
    watchdog = threading.Timer(RUN_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it; tell Popen
    if seconds >= RUN_TIMEOUT_S:
        raise RuntimeError(f"{' '.join(argv)} killed after {RUN_TIMEOUT_S:.0f}s")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{log_tail(log)}")
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss_bytes = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return Usage(seconds, usage.ru_utime + usage.ru_stime, rss_bytes / MIB)


# --- the contenders --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    root: Path
    python: str
    endpoint: str
    env: dict[str, str]
    size: int
    files: int
    children: Children
    names: tuple[str, ...]
    connections_per_file: int | None = None  # the manifest's default when None

    def run_dir(self, name: str) -> Path:
        """A fresh, empty directory per run: every download starts from nothing."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    def baseline(self, run: Path) -> list[str]:
        return [self.python, "-c", BASELINE_CODE, REPO_ID, str(run / "cache"), self.endpoint]

    def curl(self, run: Path) -> list[str]:
        """One ``curl`` per file, all at once, each writing its file to disk; the shell's
        ``wait`` fails the run if any of them failed."""
        out = run / "curl"
        out.mkdir()
        fetches = " ".join(
            f"curl -sfS -o {out / str(i)} {self.endpoint}/{REPO_ID}/resolve/main/{name} & "
            f"pids+=($!);"
            for i, name in enumerate(self.names)
        )
        script = f"pids=(); {fetches} for p in ${{pids[@]}}; do wait $p || exit 1; done"
        return ["bash", "-c", script]

    def modelsync(self, run: Path, *extra: str) -> list[str]:
        return [self.python, "-m", "controller", *extra, "-f", str(write_manifest(self, run))]

    def measure(
        self, name: str, rnd: int, argv: Sequence[str], run: Path, transfers: bool
    ) -> RunResult:
        # Flush the previous run's dirty pages now, so their write-back is not billed to
        # this run. (The seed's blobs stay in the page cache, as on a busy mirror.)
        os.sync()
        used = timed_run(self.children, argv, self.env, run / f"{_slug(name)}.log")
        if transfers and name == CURL:
            got = sum(p.stat().st_size for p in (run / "curl").iterdir())
            if got != self.size:
                raise RuntimeError(f"curl wrote {got} bytes; expected {self.size}")
        elif transfers:
            check_complete(run / "cache", self.size, self.files)
        rate = self.size / MIB / used.seconds if transfers else None
        print(
            f"  round {rnd}: {name:<18} {used.seconds:7.2f} s  {used.cpu_seconds:6.2f} s CPU"
            f"  {used.peak_rss_mib:6.0f} MiB RSS",
            flush=True,
        )
        return RunResult(name, rnd, used.seconds, used.cpu_seconds, used.peak_rss_mib, rate)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def write_manifest(bench: Bench, run: Path) -> Path:
    path = run / "manifest.yaml"
    if path.exists():
        return path
    spec: dict[str, object] = {
        "cache": str(run / "cache"),
        "state": str(run / "state"),
        "endpoint": bench.endpoint,
        "models": [{"name": "bench", "repo": REPO_ID, "revision": "main"}],
    }
    if bench.connections_per_file is not None:
        spec["downloads"] = {"connections_per_file": bench.connections_per_file}
    doc = {"apiVersion": "modelsync/v1", "kind": "ModelSet", "metadata": {"name": "bench"}}
    doc["spec"] = spec
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def check_complete(cache: Path, size: int, files: int) -> None:
    """A run only counts if every byte landed; a fast failure must not look like a win."""
    folder = repos.repo_folder(cache, REPO_ID)
    blobs = [p for p in (folder / "blobs").iterdir() if not p.name.endswith(".incomplete")]
    got = sum(p.stat().st_size for p in blobs)
    if len(blobs) != files or got != size:
        raise RuntimeError(f"{cache}: {len(blobs)} blobs, {got} bytes; expected {files}, {size}")


def run_rounds(bench: Bench, rounds: int, results: Results) -> Path:
    """Alternate the order (A B, B A, ...) so drift in machine load hits both alike.

    Returns the run dir of the last modelsync run, left converged for the no-op runs.
    """
    last_modelsync: Path | None = None
    contenders = [CURL, BASELINE, MODELSYNC]
    for rnd in range(1, rounds + 1):
        order = contenders if rnd % 2 else contenders[::-1]
        for name in order:
            run = bench.run_dir(_slug(name))
            if name == CURL:
                argv = bench.curl(run)
            elif name == BASELINE:
                argv = bench.baseline(run)
            else:
                argv = bench.modelsync(run, "--apply")
            results.runs.append(bench.measure(name, rnd, argv, run, transfers=True))
            if name == MODELSYNC:
                _discard(last_modelsync)
                last_modelsync = run
            else:
                _discard(run)  # free the space before the next download
    assert last_modelsync is not None
    return last_modelsync


def _discard(run: Path | None) -> None:
    if run is not None:
        shutil.rmtree(run, ignore_errors=True)


def run_noops(bench: Bench, converged: Path, rounds: int, results: Results) -> None:
    """On a converged cache: --apply re-checks from its verification records, --plan only looks."""
    for rnd in range(1, rounds + 1):
        apply_argv = bench.modelsync(converged, "--apply")
        results.runs.append(bench.measure(NOOP_APPLY, rnd, apply_argv, converged, False))
        # --detailed-exitcode exits 2 if anything is pending, which fails the run: a plan
        # that is not empty here means the apply did not converge, and its timing is moot.
        plan_argv = bench.modelsync(converged, "--plan", "--detailed-exitcode")
        results.runs.append(bench.measure(PLAN, rnd, plan_argv, converged, False))


# --- report ----------------------------------------------------------------------------------


def format_table(results: Results) -> str:
    gib = results.size_bytes / (1024 * MIB)
    limit = results.hub_limit_mbps
    lines = [
        f"{gib:.2f} GiB in {results.files} files, {results.rounds} rounds, "
        f"{results.cpus} CPUs, server in its own process on 127.0.0.1"
        + (f", each response limited to {limit:g} MB/s" if limit else ""),
        "load average (1 min) before/after: " + " / ".join(f"{x:.2f}" for x in results.load),
        "",
        f"{'run':<20} {'median s':>9} {'min s':>7} {'max s':>7} {'MiB/s':>8} "
        f"{'CPU s':>7} {'peak RSS MiB':>13}",
    ]
    for name in (CURL, BASELINE, MODELSYNC, NOOP_APPLY, PLAN):
        lines.append(_row(results, name))
    ratio, over_curl = results.ratio(), results.ratio(CURL)
    limited = results.hub_limit_mbps is not None
    target = 3.5 if limited else 2.0
    verdict = _verdict(ratio >= target)
    lines += [
        "",
        f"throughput ratio modelsync / snapshot_download: {ratio:.2f}x "
        f"(target >= {target:.1f}x: {verdict})",
        f"throughput ratio modelsync / parallel curl: {over_curl:.2f}x"
        + ("" if limited else f" (target >= 0.60x: {_verdict(over_curl >= 0.6)})"),
        f"client CPU-time ratio snapshot_download / modelsync: {results.cpu_ratio():.2f}x "
        "(less sensitive to other load; wall times on a busy machine are not)",
    ]
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "OK" if ok else "BELOW TARGET"


def _row(results: Results, name: str) -> str:
    times = [r.seconds for r in results.of(name)]
    moves = name in (CURL, BASELINE, MODELSYNC)
    rate = f"{results.throughput(name):8.1f}" if moves else f"{'-':>8}"
    return (
        f"{name:<20} {statistics.median(times):9.2f} {min(times):7.2f} {max(times):7.2f} "
        f"{rate} {results.median_cpu(name):7.2f} {results.median_rss(name):13.0f}"
    )


# --- main ------------------------------------------------------------------------------------

# name: (MiB in all, shards, hub limit per response in MB/s or None)
SCENARIOS: dict[str, tuple[int, int, float | None]] = {
    "loopback": (1024, 4, None),
    "capped": (512, 1, 50.0),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--size-mb", type=int, default=1024, help="repo size in MiB (default 1024)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each contender (default 3)")
    p.add_argument("--shards", type=int, default=4, help=".safetensors shards (default 4)")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the temp dirs go; same disk as the cache under test",
    )
    p.add_argument(
        "--hub-limit-mbps",
        type=float,
        help="throttle every response of the hub to this many MB/s (the tests' hub)",
    )
    p.add_argument("--json-out", type=Path, help="also write the results JSON here")
    p.add_argument(
        "--connections-per-file",
        type=int,
        help="reconcile's spec.downloads.connections_per_file (default: the manifest's default)",
    )
    p.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        help="set size, shards and hub limit for a named case (overrides those options)",
    )
    args = p.parse_args(argv)
    if args.scenario:
        args.size_mb, args.shards, args.hub_limit_mbps = SCENARIOS[args.scenario]
    if args.size_mb < 1 or args.rounds < 1 or args.shards < 1:
        p.error("--size-mb, --rounds and --shards must be positive")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly like Ctrl-C


def benchmark(
    args: argparse.Namespace, root: Path, children: Children, say: Callable[[str], None]
) -> Results:
    size = args.size_mb * MIB
    say(f"building a {args.size_mb} MiB repo in {root} ...")
    seed_dir, total, files = build_seed(root, size, args.shards)
    env = child_env(root / "hf_home", "http://127.0.0.1:9")  # endpoint filled in below
    limit = int(args.hub_limit_mbps * 1e6) if args.hub_limit_mbps else None
    endpoint = start_server(children, seed_dir, env, root / "server.log", limit)
    env["HF_ENDPOINT"] = endpoint
    names = tuple(p.name for p in (repos.repo_folder(seed_dir, REPO_ID) / "snapshots").glob("*/*"))
    bench = Bench(
        root,
        sys.executable,
        endpoint,
        env,
        total,
        files,
        children,
        names,
        args.connections_per_file,
    )
    results = Results(total, files, args.rounds, os.cpu_count() or 1, args.hub_limit_mbps)
    say(f"serving at {endpoint}; measuring ...")
    results.load.append(os.getloadavg()[0])
    converged = run_rounds(bench, args.rounds, results)
    run_noops(bench, converged, args.rounds, results)
    results.load.append(os.getloadavg()[0])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    check_free_space(args.workdir, args.size_mb * MIB)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    root = Path(tempfile.mkdtemp(prefix="modelsync-bench-", dir=args.workdir))
    children = Children()
    try:
        results = benchmark(args, root, children, lambda s: print(s, flush=True))
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        children.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(format_table(results))
    payload = json.dumps(results.summary())
    if args.json_out:
        args.json_out.write_text(payload + "\n")
    print(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())

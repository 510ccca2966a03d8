"""Benchmark: how fast modelsync re-checks a cache.

Measures, in one run on the same files:

* ``reconcile verify`` on an unchanged, already verified cache (target < 0.5 s for 10 GB and
  no file content read: the records' size, mtime and inode are trusted);
* ``reconcile verify --full`` (every byte hashed, files in parallel) against ``sha256sum``
  over the same blobs and against single-thread ``hashlib`` (target >= 1.5x the latter on
  this 2-core machine).

The cache is written once in the Hugging Face layout and served by ``reconcile serve`` from
the same directory, so modelsync adopts it (hashing it once) instead of downloading it.  The
files fit in the page cache on a 24 GB machine, so the numbers are hashing speed, not disk
speed; run with a larger ``--size-gb`` than RAM to measure the disk instead.

    python tests/benchmarks/bench_verify.py --size-gb 10 --files 8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from tests.support import repos  # noqa: E402

CHUNK = 8 << 20


def write_random(path: Path, size: int) -> None:
    """A valid safetensors file (so verification's structural check passes) of random data."""
    block = os.urandom(CHUNK)
    with path.open("wb") as out:
        data = size - 8 - 128
        header = json.dumps(
            {"w": {"dtype": "U8", "shape": [data], "data_offsets": [0, data]}}
        ).encode()
        out.write(struct.pack("<Q", 128) + header.ljust(128))
        left = data
        while left > 0:
            out.write(block[: min(left, CHUNK)])
            # Vary each block so no two chunks share content (defeats any dedup).
            block = hashlib.sha256(block[:64]).digest() + block[32:]
            left -= CHUNK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/models/bench/big", timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("reconcile serve did not become ready")


def reconcile(*args: str, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "controller", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 2):
        raise SystemExit(f"reconcile {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stdout


def hashlib_single(paths: list[Path]) -> float:
    t0 = time.perf_counter()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for path in paths:
        h = hashlib.sha256()
        with path.open("rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
    return time.perf_counter() - t0


def sha256sum(paths: list[Path]) -> float | None:
    if not shutil.which("sha256sum"):
        return None
    t0 = time.perf_counter()
    subprocess.run(["sha256sum", *map(str, paths)], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gb", type=float, default=10)
    parser.add_argument("--files", type=int, default=8)
    args = parser.parse_args()
    total = int(args.size_gb * 1e9)
    root = Path(tempfile.mkdtemp(prefix="modelsync-bench-verify-"))
    if shutil.disk_usage(root).free < 2.5 * total:
        raise SystemExit(f"need {2.5 * total / 1e9:.0f} GB free in {root.parent}")
    server = None
    try:
        cache, scratch = root / "cache", root / "scratch"
        scratch.mkdir()
        files: dict[str, bytes | Path] = {"config.json": b'{"model_type": "bench"}'}
        for i in range(args.files):
            path = scratch / f"shard-{i}.safetensors"
            write_random(path, total // args.files)
            files[f"shard-{i:05d}.safetensors"] = path
        repos.publish(cache, "bench/big", files)
        shutil.rmtree(scratch)
        blobs = sorted(
            p
            for p in (cache / "models--bench--big" / "blobs").iterdir()
            if p.stat().st_size > 1_000_000
        )

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "HF_ENDPOINT": url,
            "HF_HOME": str(root / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONPATH": str(REPO_ROOT),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "controller", "serve", str(cache), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO_ROOT,
        )
        wait_ready(url)
        manifest = root / "m.yaml"
        manifest.write_text(
            json.dumps(
                {
                    "apiVersion": "modelsync/v1",
                    "kind": "ModelSet",
                    "metadata": {"name": "bench"},
                    "spec": {
                        "cache": str(cache),
                        "state": str(root / "state"),
                        "endpoint": url,
                        "models": [{"name": "big", "repo": "bench/big"}],
                    },
                }
            )
        )

        adopt_s, _ = reconcile("--apply", "-f", str(manifest), env=env)
        unchanged = [reconcile("verify", "-f", str(manifest), "--json", env=env) for _ in range(5)]
        unchanged_s = sorted(t for t, _ in unchanged)[2]
        hashed_unchanged = json.loads(unchanged[-1][1])["hashed"]
        full_s, out = reconcile("verify", "--full", "-f", str(manifest), "--json", env=env)
        assert json.loads(out)["hashed"] == len(blobs) + 1
        single_s = hashlib_single(blobs)
        sum_s = sha256sum(blobs)

        gb = sum(p.stat().st_size for p in blobs) / 1e9
        print(f"\ncache: {gb:.2f} GB in {len(blobs)} blobs; cores: {os.cpu_count()}")
        print(f"adopt (first --apply, hashes everything):   {adopt_s:7.2f} s")
        print(
            f"verify, unchanged (median of 5):            {unchanged_s:7.3f} s  "
            f"files hashed: {hashed_unchanged}   target < 0.5 s, 0 hashed"
        )
        rows = [("verify --full", full_s), ("hashlib, one thread", single_s)]
        if sum_s is not None:
            rows.append(("sha256sum", sum_s))
        for name, secs in rows:
            print(f"{name:<28} {secs:7.2f} s  {gb / secs * 1000:7.0f} MB/s")
        print(f"verify --full vs single-thread hashlib: {single_s / full_s:.2f}x  (target >= 1.5x)")
        if sum_s is not None:
            print(f"verify --full vs sha256sum:             {sum_s / full_s:.2f}x")
        print(
            json.dumps(
                {
                    "gb": gb,
                    "adopt_s": adopt_s,
                    "unchanged_s": unchanged_s,
                    "unchanged_hashed": hashed_unchanged,
                    "full_s": full_s,
                    "hashlib_single_s": single_s,
                    "sha256sum_s": sum_s,
                }
            )
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

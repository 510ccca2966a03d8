"""The same manifests and cache give the same plan, byte for byte, in two processes whose
string hashes differ (``PYTHONHASHSEED``): set and dict order never leaks into what a pull
request's plan or a program reading ``--json`` sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Workdir
from tests.support.hub import LocalHub

SEEDS = ("0", "1", "4242")
# What changes between two runs whatever the seed: the clock and the disk's free bytes.
MOMENT = ("created_at", "disk", "budget")


def steady_json(out: str) -> str:
    data = json.loads(out)
    return json.dumps({k: v for k, v in data.items() if k not in MOMENT})


def steady_text(out: str) -> str:
    return "\n".join(
        line for line in out.splitlines() if not line.startswith(("Transfer:", "Disk budget:"))
    )


@pytest.fixture
def work(tmp_path: Path, hub: LocalHub) -> Workdir:
    w = Workdir(tmp_path / "work", hub.url)
    models = []
    for index, name in enumerate(["zeta", "alpha", "mid", "beta", "omega", "gamma"]):
        hub.publish(
            f"org/{name}",
            {
                "config.json": b'{"n": %d}' % index,
                f"weights-{name}.bin": bytes([index]) * (1000 + 37 * index),
                "sub/b.json": b"{}",
                "sub/a.json": b"[]",
            },
        )
        models.append(
            {"name": name, "repo": f"org/{name}", "priority": ["low", "high", "auto"][index % 3]}
        )
    w.write_manifest(models)
    return w


def test_the_plan_is_the_same_whatever_the_hash_seed(work: Workdir) -> None:
    assert work.reconcile("--apply", "--json").code in (0, 1)  # a cache with some on disk
    (work.cache / "models--org--beta" / "refs" / "main").unlink()  # one to re-link
    plans = {}
    for seed in SEEDS:
        for form in (("--json",), ()):
            run = work.reconcile("--plan", *form, env={"PYTHONHASHSEED": seed})
            assert run.code == 0, run.out + run.err
            steady = steady_json(run.out) if form else steady_text(run.out)
            plans.setdefault(form, set()).add(steady)
    assert all(len(outputs) == 1 for outputs in plans.values()), plans


def test_a_first_plan_is_the_same_whatever_the_hash_seed(work: Workdir) -> None:
    outputs = {
        steady_json(work.reconcile("--plan", "--json", env={"PYTHONHASHSEED": seed}).out)
        for seed in SEEDS
    }
    assert len(outputs) == 1, outputs
    (only,) = outputs
    assert [a["kind"] for a in json.loads(only)["actions"]] == ["download"] * 6

"""examples/monitoring: every metric the alerting rules and the Grafana dashboard query is one
a controller or the mirror exports -- scraped from the real app's /metrics and the mirror's
collector -- so renaming a metric breaks this test rather than, silently, an alert."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from controller.domain import Disk, Phase
from controller.mirror import metrics as mirror_metrics
from tests.support.status_reports import model_status, status_report
from tests.unit.api.test_app import serve

MONITORING = Path(__file__).resolve().parents[3] / "examples" / "monitoring"
# Series Prometheus makes itself for every target, not the controller's to export.
PROMETHEUS_OWN = {"up"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
_KEYWORDS |= {"group_left", "group_right", "inf", "nan"}


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges, grouping clauses, functions and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expression)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for word in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        calls = text[word.end() :].lstrip().startswith("(")
        if not calls and word.group() not in _KEYWORDS:
            names.add(word.group())
    return names


def alert_expressions() -> dict[str, str]:
    rule = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    return {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}


def dashboard_expressions() -> list[str]:
    dashboard: dict[str, Any] = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", ())]


def names_in(exposition: str) -> set[str]:
    families = list(text_string_to_metric_families(exposition))
    return {f.name for f in families} | {s.name for f in families for s in f.samples}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Every family and sample name a controller with a model, a pass and a disk exports,
    and every one a mirror with a budget exports."""
    with serve(tmp_path_factory.mktemp("scraped")) as served:
        served.controller.report = status_report(model_status("a", Phase.AVAILABLE))
        served.controller.disk = Disk(total=10**12, free=4 * 10**11)
        served.controller.metrics.record_pass(1.5, ok=True)
        text = served.http.get("/metrics").text
    mirror = mirror_metrics.MirrorCollector(mirror_metrics.MirrorMetrics(), lambda: 0, 10**12)
    mirror_text, _ = mirror_metrics.exposition(mirror_metrics.registry(mirror), None)
    yield names_in(text) | names_in(mirror_text.decode())


def test_the_rules_cover_what_the_fleet_alerts_on() -> None:
    rules = alert_expressions()
    assert {
        "ModelsyncModelNotAvailable",
        "ModelsyncModelCorrupted",
        "ModelsyncModelFailed",
        "ModelsyncDiskBudgetHigh",
        "ModelsyncControllerDown",
    } <= set(rules)
    assert 'phase="CORRUPTED"' in rules["ModelsyncModelCorrupted"]
    assert "> 0.9" in rules["ModelsyncDiskBudgetHigh"]
    assert "modelsync_mirror_upstream_errors_total" in rules["ModelsyncMirrorUpstreamErrors"]


@pytest.mark.parametrize(
    "expression", [*alert_expressions().values(), *dashboard_expressions()], ids=repr
)
def test_every_metric_queried_is_exported(expression: str, exported: set[str]) -> None:
    used = metric_names(expression)
    assert used, f"no metric found in {expression!r}"
    assert used - exported - PROMETHEUS_OWN == set()


def test_the_name_extraction_sees_through_promql() -> None:
    expression = (
        'histogram_quantile(0.9, sum by (le) (rate(x_bucket{job=~"a.*"}[5m]))) '
        "/ on (instance) y unless z == bool 1"
    )
    assert metric_names(expression) == {"x_bucket", "y", "z"}

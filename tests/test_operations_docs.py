"""The operations page and the Grafana dashboard name only metrics that exist, and all of them."""

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry

from framework.config.deployment import resolve_deployment
from framework.observe import metrics  # noqa: F401  (registers the workers' metrics)
from framework.runtime.supervisor import Supervisor

ROOT = Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\bbulkworker_[a-z_]+")


def documented_names() -> set[str]:
    """Each metric as a query names it: counters with `_total`, the supervisor's too."""
    supervisor = Supervisor(resolve_deployment({}, {}), print)
    registries: list[CollectorRegistry] = [REGISTRY, supervisor.registry]
    names = set()
    for registry in registries:
        for family in registry.collect():
            if family.name.startswith("bulkworker_"):
                names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    supervisor.directory.rmdir()
    return names


def sample_names(names: set[str]) -> set[str]:
    """What queries may use: a histogram's `_bucket`, `_sum` and `_count` too."""
    return names | {f"{name}{part}" for name in names for part in ("_bucket", "_sum", "_count")}


def test_every_dashboard_query_uses_defined_metrics() -> None:
    """Each panel's expression refers to metrics the workers export."""
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in expressions for name in METRIC.findall(expr)}
    assert len(expressions) >= 12
    assert set() == used - sample_names(documented_names())


def test_the_operations_page_lists_every_metric_and_no_other() -> None:
    """Every exported metric has a row; every name the page mentions exists."""
    page = (ROOT / "docs" / "operations.md").read_text()
    names = documented_names()
    assert [] == sorted(name for name in names if f"| `{name}` |" not in page)
    assert set() == set(METRIC.findall(page)) - sample_names(names)

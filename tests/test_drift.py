"""Drift check: every metric an alert, recording rule or dashboard names is one the exporter emits."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import NOON, REPO, scratch_database
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed

_NAME = re.compile(r"\b([a-z_]+:[a-z0-9_]+:[a-z0-9_]+|rag_[a-z0-9_]+)\b")
# Label names are not metric names: matchers, grouping lists and label_values' label argument go first.
_LABEL_PLACES = re.compile(r"\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|,\s*\w+\)$")


def metric_names(expr: str) -> set[str]:
    return set(_NAME.findall(_LABEL_PLACES.sub(" ", expr)))


@pytest.fixture(scope="module")
def emitted(pg_server) -> set[str]:
    """Sample names the exporter emits on the demo data, with a budget set so that family appears too."""
    with scratch_database(pg_server, "drift") as dsn:
        init_db(dsn)
        # Seeded, refreshed and collected at NOON: with the wall clock, a midnight between the seed and the
        # refresh would leave today's families out of what is emitted.
        seed(dsn, scale=DemoScale(days=40, chunks=2000), at=NOON)
        config = Config(dsn=dsn, default_daily_cost_budget_usd=100.0)
        database = Database(dsn, password=None, application_name="drift", connect_timeout=2, statement_timeout=5,
                            lock_timeout=1)
        refresher = Refresher(database, config, clock=NOON.timestamp)
        refresher.refresh()
        database.close()
        return {sample.name for family in build_registry(lambda: refresher.snapshot, clock=NOON.timestamp).collect()
                for sample in family.samples}


def recorded() -> set[str]:
    return {rule["record"] for path in (REPO / "alerting" / "rules").glob("*.yml")
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "record" in rule}


def names_in_rules() -> set[str]:
    names = set()
    for path in (REPO / "alerting" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                names |= metric_names(rule["expr"])
    return names


def test_rules_name_only_emitted_or_recorded_metrics(emitted):
    unknown = names_in_rules() - emitted - recorded()
    assert not unknown, f"rules use metrics nobody produces: {sorted(unknown)}"


def test_every_emitted_family_is_documented(emitted):
    documented = (REPO / "docs" / "metrics.md").read_text()
    # A counter's _created series is documented with its counter.
    created = {name for name in emitted if name.endswith("_created") and name.removesuffix("_created") + "_total"
               in emitted}
    missing = {name.removesuffix("_total") for name in emitted - created if name.startswith("rag_")
               and name.removesuffix("_total") not in documented and name not in documented}
    assert not missing, f"families missing from docs/metrics.md: {sorted(missing)}"


def names_in_dashboards() -> set[str]:
    import json

    names = set()
    for path in (REPO / "grafana" / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                names |= metric_names(target["expr"])
                names |= set(re.findall(r"\b((?:process|scrape)_[a-z_]+)\b", target["expr"]))
        for variable in json.loads(path.read_text())["templating"]["list"]:
            names |= metric_names(str(variable.get("query", "")))
    return names


def test_dashboards_name_only_emitted_recorded_or_builtin_metrics(emitted):
    builtin = {"scrape_duration_seconds", "scrape_samples_scraped", "process_resident_memory_bytes",
               "process_cpu_seconds_total"}
    unknown = names_in_dashboards() - emitted - recorded() - builtin
    assert not unknown, f"dashboards use metrics nobody produces: {sorted(unknown)}"
    assert "process_resident_memory_bytes" not in emitted  # the live part of /metrics, not the snapshot

"""Grafana dashboards without Grafana: their JSON and references, and every panel query on a real Prometheus."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from conftest import REPO, scratch_database
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.backfill import backfill
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.demo import write_scaled_rules
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Prometheus, wait_for

GRAFANA = REPO / "grafana"
DASHBOARDS = {path.name: json.loads(path.read_text()) for path in sorted((GRAFANA / "dashboards").glob("*.json"))}
BUILTIN_VARIABLES = {"__range", "__interval", "__rate_interval", "__range_s", "__interval_ms"}
PROVISIONED_UIDS = {ds["uid"] for ds in yaml.safe_load(
    (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())["datasources"]}


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def targets() -> list[tuple[str, dict, dict]]:
    return [(name, panel, target) for name, d in DASHBOARDS.items() for panel in panels(d)
            for target in panel.get("targets", [])]


def test_committed_json_is_what_the_generator_makes():
    result = subprocess.run([sys.executable, str(GRAFANA / "generate.py"), "--check"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_dashboards_load_with_unique_stable_uids():
    assert len(DASHBOARDS) == 7
    uids = [d["uid"] for d in DASHBOARDS.values()]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    for name, d in DASHBOARDS.items():
        assert d["id"] is None, name
        assert name == f"{d['uid']}.json" and len(d["uid"]) <= 40 and re.fullmatch(r"[a-z0-9-]+", d["uid"])
        assert panels(d), name
        assert len({p["id"] for p in d["panels"]}) == len(d["panels"]), f"{name}: panel ids repeat"


def test_every_datasource_reference_resolves():
    for name, d in DASHBOARDS.items():
        refs = [v["datasource"] for v in d["templating"]["list"] if v.get("datasource")]
        refs += [p["datasource"] for p in panels(d)] + [t["datasource"] for _, p, t in targets() if t]
        for ref in refs:
            assert ref["uid"] in PROVISIONED_UIDS, f"{name}: datasource {ref} is not provisioned"


def test_every_variable_used_is_defined():
    for name, d in DASHBOARDS.items():
        defined = {v["name"] for v in d["templating"]["list"]} | BUILTIN_VARIABLES
        texts = [t["expr"] for t in (t for p in panels(d) for t in p.get("targets", []))]
        texts += [p["title"] for p in panels(d)]
        used = {m for text in texts for m in re.findall(r"\$\{?(\w+)", text)}
        assert used <= defined, f"{name}: undefined variables {used - defined}"


def test_every_panel_has_a_unit():
    for name, d in DASHBOARDS.items():
        for panel in panels(d):
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: panel {panel['title']!r} has no unit"


def test_alert_dashboard_links_point_at_dashboards():
    uids = {d["uid"] for d in DASHBOARDS.values()}
    for path in (REPO / "alerting" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    uid = re.search(r"/d/([\w-]+)/", rule["annotations"]["dashboard_url"]).group(1)
                    assert uid in uids, f"{rule['alert']} links to unknown dashboard {uid}"


def test_old_page_mapping_names_real_panels():
    """docs/dashboards.md maps every element of the old page to a dashboard and panel that exist."""
    titles = {(d["title"], p["title"]) for d in DASHBOARDS.values() for p in panels(d)}
    rows = re.findall(r"^\| [^|]+ \| (RAG [^|]+?) \| ([^|]+?) \|$", (REPO / "docs" / "dashboards.md").read_text(),
                      flags=re.M)
    assert len(rows) >= 15
    for dashboard, panel in rows:
        for title in panel.split(" / "):
            assert (dashboard, title.strip().strip("*")) in titles, (dashboard, title)


# --- every panel query against a real Prometheus -------------------------------------------------


@pytest.fixture(scope="module")
def live(pg_server, tmp_path_factory):
    """Demo data, the exporter, 59 days of backfilled history, and Prometheus with the rules."""
    folder = tmp_path_factory.mktemp("dash")
    with scratch_database(pg_server, "dashboards") as dsn:
        init_db(dsn)
        seed(dsn, scale=DemoScale(days=60, chunks=3000))
        config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=1,
                        chunk_refresh_interval=1, statement_timeout=0.8, max_data_age=60,
                        default_daily_cost_budget_usd=100.0)
        exporter = start_exporter(config, None)
        target = f"127.0.0.1:{exporter.port}"
        today = datetime.now(timezone.utc).date()
        history = folder / "history.om"
        backfill(dsn, None, config, today - timedelta(days=59), history,
                 target={"job": "rag-analytics-exporter", "instance": target})
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                        str(history), str(folder / "prom" / "data")], check=True, capture_output=True, timeout=300)
        rules = write_scaled_rules(folder / "rules", factor=300)
        prometheus = Prometheus(folder / "prom", target, rules, extra_args=["--storage.tsdb.retention.time=400d"])
        try:
            for expr in ('ALERTS{alertname=~"Rag.*Anomaly"}', "model:rag_model_tokens:burn_rate1h_per_day",
                         'rate(process_cpu_seconds_total{job="rag-analytics-exporter"}[5m])',
                         'increase(rag_exporter_refresh_errors_total[5m])'):
                wait_for(f"{expr} to have data", lambda e=expr: prometheus.query(e), 60)
            yield prometheus
        finally:
            prometheus.stop()
            exporter.stop()


def variable_values(prometheus: Prometheus, variable: dict) -> list[str]:
    """Each value a user can pick, plus All (as Grafana writes it for a multi-value regex)."""
    if variable["type"] == "custom":
        return variable["query"].split(",")
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]).groups()
    values = prometheus.label_values(label, metric)
    assert values, f"variable {variable['name']} has no values"
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}-])", r"\\\\\1", v) for v in values]
    return escaped + ([f"({'|'.join(escaped)})"] if variable.get("includeAll") else [])


def test_every_panel_query_returns_data(live):
    executed = 0
    empty = []
    now = time.time()
    for d in DASHBOARDS.values():
        start = now - 7 * 86400  # the dashboards' default range: the last 7 days
        variables = d["templating"]["list"]
        choices = [variable_values(live, v) for v in variables]
        for combination in itertools.product(*choices):
            values = dict(zip((v["name"] for v in variables), combination, strict=True))
            for panel in panels(d):
                for target in panel["targets"]:
                    # As Grafana would send it: a 7-day range, ~30-minute steps (1 day where the panel
                    # says so), start floored and end ceiled to the step, $__rate_interval = step + the
                    # datasource's 30s scrape interval.
                    step = 86400 if panel.get("interval") == "1d" else 1800
                    expr = (target["expr"].replace("$__rate_interval", f"{step + 30}s").replace("$__range", "7d")
                            .replace("$__interval", f"{step}s"))
                    for key, value in values.items():
                        expr = expr.replace(f"${key}", value)
                    if target.get("instant"):
                        result = live.query(expr, at=now)
                        has_data = bool(result)
                    else:
                        result = live.query_range(expr, start - start % step, now - now % step + step, step)
                        has_data = any(series["values"] for series in result)
                    executed += 1
                    if not has_data:
                        empty.append(f"{d['title']} / {panel['title']} / {target['refId']} {values}: {expr}")
    print(f"executed {executed} panel queries")
    assert not empty, "panels with No data:\n" + "\n".join(empty[:20])

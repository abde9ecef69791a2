"""Grafana dashboards without Grafana: their JSON and references, and every panel query on a real Prometheus."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from conftest import RELEASES, REPO, one_utc_day, release_binary, scratch_database
from mixin.config import CONFIG
from panels import (
    DASHBOARDS,
    Series,
    differences,
    escape,
    every_query,
    interpolate,
    needs_history,
    of_deployment,
    panels,
    run,
)
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.backfill import backfill
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.demo import write_scaled_rules
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Prometheus, wait_for

GRAFANA = REPO / "grafana"
BUILTIN_VARIABLES = {"__range", "__interval", "__rate_interval", "__range_s", "__interval_ms"}
PROVISIONED_UIDS = {ds["uid"] for ds in yaml.safe_load(
    (GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())["datasources"]}


def targets() -> list[tuple[str, dict, dict]]:
    return [(name, panel, target) for name, d in DASHBOARDS.items() for panel in panels(d)
            for target in panel.get("targets", [])]


@pytest.mark.unit
def test_committed_json_is_what_the_generator_makes():
    result = subprocess.run([sys.executable, "-m", "mixin", "--check"], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.unit
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


@pytest.mark.unit
def test_every_datasource_reference_is_the_variable_whose_default_is_provisioned():
    """Imported into a Grafana whose Prometheus has another uid, the dashboards follow the variable: no panel,
    query or variable pins a uid, and the provisioned one appears only as the variable's default."""
    for name, d in DASHBOARDS.items():
        variable = next(v for v in d["templating"]["list"] if v["name"] == "datasource")
        assert variable["type"] == "datasource" and variable["query"] == "prometheus", name
        assert variable["current"]["value"] in PROVISIONED_UIDS, name
        refs = [v["datasource"] for v in d["templating"]["list"] if v.get("datasource")]
        refs += [p["datasource"] for p in panels(d)] + [t["datasource"] for p in panels(d) for t in p["targets"]]
        assert refs and all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in refs), name
        assert json.dumps(d).count(f'"{CONFIG.datasource_uid}"') == 1, f"{name} pins {CONFIG.datasource_uid}"


@pytest.mark.unit
def test_every_query_is_scoped_to_the_selected_deployments():
    """Every query names our job and every deployment variable, and de-duplicates exporter replicas: with
    max without the replica labels or max by the deployment labels (never a sum), or by reading series that
    the rules already made one per deployment (ALERTS, recording rules). The exporter dashboard shows each
    replica on purpose."""
    for name, d in DASHBOARDS.items():
        for panel in panels(d):
            for target in panel["targets"]:
                expr = target["expr"]
                for label in CONFIG.deployment_labels:
                    assert f'{label}=~"${label}"' in expr, f"{name} / {panel['title']}: not scoped by ${label}"
                per_replica = d["uid"] == "rag-exporter"
                deduplicated = (f"max without ({', '.join(CONFIG.replica_labels)})" in expr
                                or f"max by ({', '.join(CONFIG.deployment_labels)})" in expr) or re.search(
                    r"\bALERTS\{|\b\w+:\w+:\w+\{", expr)
                assert per_replica or deduplicated, \
                    f"{name} / {panel['title']}: exporter replicas are not de-duplicated: {expr}"


@pytest.mark.unit
def test_every_variable_used_is_defined():
    for name, d in DASHBOARDS.items():
        defined = {v["name"] for v in d["templating"]["list"]} | BUILTIN_VARIABLES
        texts = [t["expr"] for t in (t for p in panels(d) for t in p.get("targets", []))]
        texts += [p["title"] for p in panels(d)]
        used = {m for text in texts for m in re.findall(r"\$\{?(\w+)", text)}
        assert used <= defined, f"{name}: undefined variables {used - defined}"


@pytest.mark.unit
def test_every_panel_has_a_unit():
    for name, d in DASHBOARDS.items():
        for panel in panels(d):
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: panel {panel['title']!r} has no unit"


@pytest.mark.unit
def test_alert_dashboard_links_point_at_dashboards():
    uids = {d["uid"] for d in DASHBOARDS.values()}
    for path in (REPO / "alerting" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    uid = re.search(r"/d/([\w-]+)/", rule["annotations"]["dashboard_url"]).group(1)
                    assert uid in uids, f"{rule['alert']} links to unknown dashboard {uid}"


@pytest.mark.unit
def test_old_page_mapping_names_real_panels():
    """docs/dashboards.md maps every element of the old page to a dashboard and panel that exist."""
    titles = {(d["title"], p["title"]) for d in DASHBOARDS.values() for p in panels(d)}
    rows = re.findall(r"^\| [^|]+ \| (RAG [^|]+?) \| ([^|]+?) \|$", (REPO / "docs" / "dashboards.md").read_text(),
                      flags=re.M)
    assert len(rows) >= 15
    for dashboard, panel in rows:
        for title in panel.split(" / "):
            assert (dashboard, title.strip().strip("*")) in titles, (dashboard, title)


# --- every panel query against real Prometheus servers ------------------------------------------
# Two deployments; A has two exporter replicas. One Prometheus scrapes all three exporters, and one
# Prometheus per deployment scrapes only that deployment's first replica: what a panel shows for a
# deployment must be what it shows when only that deployment is scraped, no doubling and no mixing.

DEPLOYMENTS = {"A": {"environment": "production", "rag_service": "support"},
               "B": {"environment": "staging", "rag_service": "support"}}
REPLICAS = {"A": 2, "B": 1}
SEEDS = {"A": 42, "B": 7}  # different data, so that a mixed or summed value cannot pass for the right one
# The exporters serve today's rows and yesterday's anomalies by the wall clock, and each release's stack is seeded
# once for its tests: the stack and its tests must end on the day it seeded. Measured 50 s a release (the stack,
# then both tests) at load 1 to 2.5; four times that, rounded up.
STACK_SECONDS = 240


@dataclass
class Stacks:
    combined: Prometheus
    alone: dict[str, Prometheus]
    instances: dict[str, list[str]]
    unlabelled: Prometheus  # B's first replica scraped with no deployment labels, as the demo does


def build_blocks(histories: list[Path], data: Path, release: str) -> None:
    for history in histories:
        subprocess.run([release_binary("promtool", release), "tsdb", "create-blocks-from", "openmetrics",
                        "--max-block-duration=744h", str(history), str(data)], check=True, capture_output=True,
                       timeout=300)


@pytest.fixture(scope="module", params=RELEASES)
def stacks(pg_server, tmp_path_factory, request):
    """Each deployment's database with its own demo data, its exporters with 59 days of backfilled
    history each, and the Prometheus servers (with the rules) described above: all of Debian's
    Prometheus 2.42, or all of the pinned Prometheus 3 (conftest.RELEASES)."""
    release = request.param
    folder = tmp_path_factory.mktemp(f"dash-{release}")
    at = one_utc_day(STACK_SECONDS)
    rules = write_scaled_rules(folder / "rules", factor=300, windows=False)
    with contextlib.ExitStack() as stack:
        instances, histories, static_configs = {}, {}, []
        for name, labels in DEPLOYMENTS.items():
            dsn = stack.enter_context(scratch_database(pg_server, f"dashboards_{release}_{name.lower()}"))
            init_db(dsn)
            seed(dsn, scale=DemoScale(days=60, chunks=3000), seed_value=SEEDS[name], at=at)
            config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=1,
                            chunk_refresh_interval=1, statement_timeout=0.8, max_data_age=60,
                            default_daily_cost_budget_usd=100.0)
            instances[name], histories[name] = [], []
            for replica in range(REPLICAS[name]):
                exporter = start_exporter(config, None)
                stack.callback(exporter.stop)
                instance = f"127.0.0.1:{exporter.port}"
                history = folder / f"{name}{replica}.om"
                backfill(dsn, None, config, at.date() - timedelta(days=59), history, at=at,
                         target={"job": "rag-analytics-exporter", "instance": instance, **labels})
                instances[name].append(instance)
                histories[name].append(history)
            static_configs.append({"targets": instances[name], "labels": labels})
            if name == "B":
                unlabelled_history = folder / "B-unlabelled.om"
                backfill(dsn, None, config, at.date() - timedelta(days=59), unlabelled_history, at=at,
                         target={"job": "rag-analytics-exporter", "instance": instances[name][0]})

        def prometheus(key: str, targets: list[dict], blocks: list[Path]) -> Prometheus:
            build_blocks(blocks, folder / key / "data", release)
            server = Prometheus(folder / key, targets, rules, extra_args=["--storage.tsdb.retention.time=400d"],
                                release=release)
            stack.callback(server.stop)
            return server

        combined = prometheus("combined", static_configs, [h for name in DEPLOYMENTS for h in histories[name]])
        alone = {name: prometheus(f"alone-{name}", [{"targets": instances[name][:1], "labels": labels}],
                                  histories[name][:1]) for name, labels in DEPLOYMENTS.items()}
        unlabelled = prometheus("unlabelled", [{"targets": instances["B"][:1]}], [unlabelled_history])
        servers = [combined, *alone.values(), unlabelled]
        for server in servers:
            for expr in ('ALERTS{alertname=~"Rag.*Anomaly",alertstate="firing"}',
                         "model:rag_model_tokens:burn_rate1h_per_day",
                         'rate(process_cpu_seconds_total{job="rag-analytics-exporter"}[5m])',
                         'increase(rag_exporter_refresh_errors_total[5m])'):
                wait_for(f"{expr} to have data", lambda e=expr, s=server: s.query(e), 60)
        # Alerts still pending in one server and firing in another would differ for timing alone.
        wait_for("no pending alert in any server",
                 lambda: not any(s.query('ALERTS{alertstate="pending"}') for s in servers), 60)
        yield Stacks(combined, alone, instances, unlabelled)


def test_each_deployment_shows_as_if_it_were_scraped_alone(stacks):
    now = time.time()
    executed, empty, problems = 0, [], []
    cache: dict[tuple, Series] = {}

    def cached(server: Prometheus, d: dict, panel: dict, target: dict, values: dict[str, str]) -> Series:
        key = (server.address, d["uid"], panel["id"], target["refId"], tuple(sorted(values.items())))
        if key not in cache:
            nonlocal executed
            executed += 1
            cache[key] = run(server, panel, target, values, now)
        return cache[key]

    every = {label: ".*" for label in CONFIG.deployment_labels}  # All, as the deployment variables write it
    for d in DASHBOARDS.values():
        per_replica = d["uid"] == "rag-exporter"
        variables = [v for v in d["templating"]["list"] if v["type"] != "datasource"]
        for name, labels in DEPLOYMENTS.items():
            pinned = {label: escape(value) for label, value in labels.items()}
            for variable in variables:
                if variable["name"] in pinned:  # each deployment label's variable offers the deployment
                    assert labels[variable["name"]] in stacks.combined.label_values(
                        variable["name"], interpolate(re.search(r"label_values\((.+), ", variable["query"])[1],
                                                      pinned)), (d["title"], variable["name"])
            for panel, target, values in every_query(stacks.combined, d, pinned):
                where = f"{d['title']} / {panel['title']} / {target['refId']}, deployment {name} {values}"
                alone = cached(stacks.alone[name], d, panel, target, pinned | values)
                together = cached(stacks.combined, d, panel, target, pinned | values)
                side_by_side = of_deployment(cached(stacks.combined, d, panel, target, every | values), labels)
                if not together and not needs_history(target):
                    empty.append(where)
                for problem in (differences(together, alone, stacks.instances[name], per_replica)
                                + differences(side_by_side, alone, stacks.instances[name], per_replica)):
                    problems.append(f"{where}: {problem}")
    print(f"executed {executed} panel queries on {1 + len(stacks.alone)} Prometheus servers")
    assert not empty, "panels with No data:\n" + "\n".join(empty[:20])
    assert not problems, "panels that double or mix deployments:\n" + "\n".join(problems[:20])


def test_an_unlabelled_exporter_shows_as_one_deployment(stacks):
    """With no deployment labels at all (the demo, a first install), All (.*) shows the one exporter: every panel
    has data, and the same as deployment B's own Prometheus shows, but for the labels."""
    now = time.time()
    every = {label: ".*" for label in CONFIG.deployment_labels}
    pinned = {label: escape(value) for label, value in DEPLOYMENTS["B"].items()}
    executed, empty, problems = 0, [], []
    for d in DASHBOARDS.values():
        for v in d["templating"]["list"]:
            if v["name"] in CONFIG.deployment_labels:
                assert not stacks.unlabelled.label_values(v["name"], "up"), "the scrape sets no deployment label"
        for panel, target, values in every_query(stacks.unlabelled, d, every):
            where = f"{d['title']} / {panel['title']} / {target['refId']} {values}"
            unlabelled = run(stacks.unlabelled, panel, target, every | values, now)
            alone = run(stacks.alone["B"], panel, target, pinned | values, now)
            executed += 2
            if not unlabelled and not needs_history(target):
                empty.append(where)
            stripped = {tuple(item for item in key if item[0] not in CONFIG.deployment_labels): points
                        for key, points in alone.items()}
            problems += [f"{where}: {p}" for p in differences(unlabelled, stripped, stacks.instances["B"][:1],
                                                               per_replica=d["uid"] == "rag-exporter")]
    print(f"executed {executed} panel queries")
    assert not empty, "panels with No data:\n" + "\n".join(empty[:20])
    assert not problems, "panels that differ without deployment labels:\n" + "\n".join(problems[:20])


@pytest.mark.unit
def test_provisioning_comments_name_files_that_exist():
    """The provisioning files tell a reader where the dashboards come from; every file they name is there
    (they named grafana/generate.py long after it was gone)."""
    named = []
    for path in (GRAFANA / "provisioning").rglob("*.y*ml"):
        comments = "\n".join(line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line)
        named += [(path.name, found) for found in re.findall(r"(?<![\w./-])[\w.-]+(?:/[\w.-]+)+/?", comments)]
    assert named, "no paths found to check"
    missing = [(name, found) for name, found in named if not (REPO / found).exists()]
    assert not missing, f"provisioning comments name files that do not exist: {missing}"

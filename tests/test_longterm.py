"""Long-term storage end to end, with the real VictoriaMetrics binaries.

The exporter serves demo data; Prometheus scrapes it with the committed HA config
(deploy/ha/prometheus-a.yml, local addresses substituted) and remote-writes to VictoriaMetrics.
The backfilled history reaches both from one file: promtool turns it into Prometheus' blocks, and
VictoriaMetrics takes it as it is on /api/v1/import/prometheus (docs/deployment.md's curl step).
Every dashboard panel query must then answer the same on both query APIs, and vmalert, running the
committed rules against VictoriaMetrics, must fire the demo's latency anomaly into a real
Alertmanager.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from datetime import timedelta

import pytest

from conftest import REPO, free_port, one_utc_day, require_binary, scratch_database
from harness import WebhookSink
from panels import DASHBOARDS, Series, differences, escape, every_query, needs_history, run
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.backfill import backfill
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.demo import write_scaled_rules
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Alertmanager, Process, Prometheus, VictoriaMetrics, committed_ha_config, wait_for

pytestmark = pytest.mark.e2e

LABELS = {"environment": "production", "rag_service": "support-bot"}
JOB = "rag-analytics-exporter"
# VictoriaMetrics holds back the newest samples from queries for -search.latencyOffset (the test's
# store: 5 s), and Prometheus sends remote_write batches within 5 s: compare at an instant that both
# have had this long to hold, with 10 s more for a loaded machine.
SETTLED = VictoriaMetrics.LATENCY_OFFSET + 5 + 10
LIVE_SPAN = 20  # seconds of live samples compared in 5 s steps
# VictoriaMetrics keeps a value to about 15 significant digits: a Unix timestamp stored as a value (the exporter's
# *_timestamp_seconds) came back up to 2.4 µs off (20,000 such values: relative error at most 1.4e-15). "Seconds
# since" panels (time() - a timestamp) inherit that error; they are allowed 20 µs, 8 times the worst measured.
SINCE_PRECISION = 2e-5
# The exporter serves today's rows and yesterday's anomalies by the wall clock, and the stores are filled once for
# both tests: the module must end on the day it seeded. Measured 80 s (the stores, then both tests) at load 1 to
# 2.5; four times that, rounded up.
STORES_SECONDS = 360


@pytest.fixture(scope="module")
def stores(pg_server, tmp_path_factory):
    """(Prometheus, VictoriaMetrics, the demo's DSN): the same history and the same live samples in both."""
    folder = tmp_path_factory.mktemp("longterm")
    with contextlib.ExitStack() as stack:
        dsn = stack.enter_context(scratch_database(pg_server, "longterm"))
        init_db(dsn)
        at = one_utc_day(STORES_SECONDS)
        seed(dsn, scale=DemoScale(days=60, chunks=3000), at=at)
        config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=1,
                        chunk_refresh_interval=1, statement_timeout=0.8, max_data_age=60,
                        default_daily_cost_budget_usd=100.0)
        exporter = start_exporter(config, None)
        stack.callback(exporter.stop)
        instance = f"127.0.0.1:{exporter.port}"
        history, blocks = folder / "history.om", folder / "blocks"
        backfill(dsn, None, config, at.date() - timedelta(days=59), history, at=at,
                 target={"job": JOB, "instance": instance, **LABELS})
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                        str(history), str(blocks)], check=True, capture_output=True, timeout=300)
        store = VictoriaMetrics(folder / "vm", extra_args=["-dedup.minScrapeInterval=1s"])
        stack.callback(store.stop)
        store.import_openmetrics(history)
        shutil.copytree(blocks, folder / "prom" / "data")
        rules = write_scaled_rules(folder / "rules", factor=300, windows=False)
        prometheus = Prometheus(folder / "prom", config=committed_ha_config(
            REPO / "deploy" / "ha" / "prometheus-a.yml", rules, store.write_url,
            static_configs=[{"targets": [instance], "labels": LABELS}]),
            extra_args=["--storage.tsdb.retention.time=400d"])
        stack.callback(prometheus.stop)
        for server in (prometheus, store):
            for expr in ('ALERTS{alertname=~"Rag.*Anomaly",alertstate="firing"}',
                         "model:rag_model_tokens:burn_rate1h_per_day", f'rag_exporter_up{{job="{JOB}"}}'):
                wait_for(f"{expr} to have data", lambda e=expr, s=server: s.query(e), 60)
        wait_for("no pending alert", lambda: not prometheus.query('ALERTS{alertstate="pending"}'), 60)
        yield prometheus, store, dsn


def unnamed(series: Series) -> Series:
    """Without __name__: MetricsQL keeps the metric name after rollups such as max_over_time, where PromQL
    drops it. No panel shows it (every series panel sets a legend, tables hide the column). Without NaN
    points too: VictoriaMetrics stores no NaN sample, and a window with no request records 0/0 (Grafana
    draws a NaN as a gap, as it draws a missing point)."""
    cleaned = {}
    for key, points in series.items():
        kept = {t: v for t, v in points.items() if str(v).lower() != "nan"}
        if kept:
            cleaned[tuple(item for item in key if item[0] != "__name__")] = kept
    return cleaned


def test_every_panel_answers_the_same_on_prometheus_and_victoriametrics(stores):
    prometheus, store, _ = stores
    # Live samples from `live` on; compared at `at`, once VictoriaMetrics shows them.
    # In milliseconds, as Grafana sends them: VictoriaMetrics evaluates time() at millisecond precision.
    live = round(time.time(), 3)
    at = round(live + LIVE_SPAN, 3)
    time.sleep(LIVE_SPAN + SETTLED)
    executed, empty, problems = 0, [], []
    pinned = {label: escape(value) for label, value in LABELS.items()}
    for d in DASHBOARDS.values():
        for panel, target, own in every_query(prometheus, d, pinned):
            values = pinned | own
            where = f"{d['title']} / {panel['title']} / {target['refId']} {values}"
            # Both at one instant in the past: the dashboard's 7 days ending at the last step before it
            # (history), and the last seconds before it in 5 s steps (live samples).
            history, recent = ([run(api, panel, target, values, at, ceil_end=False, span=span)
                                for api in (prometheus, store)] for span in (None, (live, 5)))
            executed += 4
            if not history[0] and not recent[0] and not needs_history(target):
                empty.append(where)
            tolerance = SINCE_PRECISION if "time() -" in target["expr"] else 1e-12
            problems += [f"{where}: {p}" for answers in (history, recent)
                         for p in differences(*map(unnamed, answers), [], per_replica=False, abs_tol=tolerance)]
    print(f"executed {executed} panel queries on Prometheus and VictoriaMetrics")
    assert not empty, "panels with No data:\n" + "\n".join(empty[:20])
    assert not problems, "panels that answer differently:\n" + "\n".join(problems[:20])


def test_vmalert_fires_the_rules_from_victoriametrics_into_alertmanager(stores, tmp_path):
    _, store, _ = stores
    sink = WebhookSink("127.0.0.1", 0)
    with contextlib.ExitStack() as stack:
        stack.callback(sink.close)
        alertmanager = Alertmanager(tmp_path / "am", sink.url)
        stack.callback(alertmanager.stop)
        rules = write_scaled_rules(tmp_path / "rules", factor=300, windows=False)
        vmalert = Process([require_binary("vmalert"), *(f"-rule={rule}" for rule in rules),
                           f"-datasource.url=http://{store.address}", f"-remoteWrite.url=http://{store.address}",
                           f"-notifier.url=http://{alertmanager.address}", "-evaluationInterval=1s",
                           # Alerts labelled exactly as Prometheus labels them (no alertgroup), so that
                           # Alertmanager groups, inhibits and de-duplicates them the same.
                           "-disableAlertgroupLabel",
                           f"-httpListenAddr=127.0.0.1:{free_port()}"], tmp_path / "vmalert.log")
        stack.callback(vmalert.stop)
        ticket = {"alertname": "RagComponentLatencyAnomaly", "severity": "critical", "component": "llm", **LABELS}

        def ticketed() -> list[dict]:
            return [alert for receiver, payload in sink.received() for alert in payload["alerts"]
                    if receiver == "ticket" and all(alert["labels"].get(k) == v for k, v in ticket.items())]

        # Yesterday's anomalies open a ticket, never a page (alertmanager.yml), from vmalert as from Prometheus.
        wait_for(f"vmalert's ticket for the llm anomaly (log: {vmalert.log})", ticketed, 90)
        (alert,) = ticketed()
        print("webhook alert from vmalert:", alert)
        assert alert["status"] == "firing"
        assert alert["labels"] == ticket | {"job": JOB}, "the labels Prometheus gives the same alert"
        assert alert["annotations"]["description"].startswith("[production/support-bot] Mean latency of component "
                                                              "llm yesterday was ")
        assert alert["annotations"]["runbook_url"].endswith("#ragcomponentlatencyanomaly")

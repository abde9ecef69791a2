"""End to end with live data: the live writer -> PostgreSQL -> exporter -> Prometheus -> Alertmanager -> a webhook.

Time runs as in the demo: the writer adds 5 simulated minutes every 10 s (30x), and the committed rules
run with every window, offset and `for:` divided by 30 (demo.write_scaled_rules). The exporter refreshes
and Prometheus scrapes every 5 s, as in the demo. An outage of one component must page exactly once:
one notification, for that component's critical error-budget alert, and nothing else at the pager.
"""

from __future__ import annotations

import time

import pytest

from conftest import one_utc_day, require_binary
from harness import WebhookSink
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.demo import DEMO_FACTOR, REFRESH_INTERVAL, WRITE_INTERVAL, write_scaled_rules
from rag_analytics_exporter.live import BUSY_AFTERNOON, LiveWriter
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Alertmanager, Prometheus, wait_for

pytestmark = pytest.mark.e2e

PAGE = "RagComponentErrorBudgetBurn"
# Measured from the incident's start to the page at the webhook, 11 runs on a loaded machine
# (docs/testing.md): 19.1 s to 27.9 s. The bound is about four times the slowest: a slower machine makes
# the test slower, not red.
PAGE_BOUND = 120.0
# After the page: ten of Alertmanager's group intervals here (2 s), in which a duplicate or the same
# alert on another component (total fires in the same evaluation as the stage) would arrive.
QUIET_AFTER_PAGE = 20.0
# Before the incident the live windows fill with clean traffic: two writes hold the page's volume
# gate (100 requests; a write brings about 200 by day), and nothing may page meanwhile.
WARM_UP = 25.0
# The traffic's shape (busy afternoons, quiet nights and weekends) follows the writer's simulated clock: run at
# 03:00 UTC on a weekend, two writes brought 92 search requests, under the gate. So the test (as the demo) runs
# live.BUSY_AFTERNOON's traffic whenever it runs; the rows keep the real UTC day.
# The live writer starts a new day's rows at 00:00 UTC, and the exporter serves it: the test must end on the day
# it seeded. Measured 74 s at load 1 to 2.5 (85 s per run in docs/testing.md); the bound is the longest a passing
# run may take: the stack's starts (2 x 30 s), the scrape (60), WARM_UP, PAGE_BOUND and QUIET_AFTER_PAGE, and a
# minute for the seed and the exporter's start.
LIVE_SECONDS = 360


def pages(sink: WebhookSink) -> list[tuple[str, str, str, str]]:
    """(status, alertname, component, severity) of every alert in every notification to the pager."""
    return [(alert["status"], alert["labels"].get("alertname"), alert["labels"].get("component"),
             alert["labels"].get("severity"))
            for receiver, payload in sink.received() if receiver == "pager" for alert in payload["alerts"]]


def test_an_outage_in_live_data_pages_once(dsn, tmp_path):
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    seed(dsn, scale=DemoScale(days=40, chunks=1000), anomalies=False, at=one_utc_day(LIVE_SECONDS))
    sink = WebhookSink("127.0.0.1", 0)
    writer = LiveWriter(dsn, interval=WRITE_INTERVAL, compression=DEMO_FACTOR, traffic_from=BUSY_AFTERNOON)
    started: list = []
    try:
        writer.start()
        started.append(writer)
        config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=REFRESH_INTERVAL,
                        chunk_refresh_interval=60, max_data_age=120, statement_timeout=5)
        exporter = start_exporter(config, password=None)
        started.append(exporter)
        alertmanager = Alertmanager(tmp_path / "am", sink.url)
        started.append(alertmanager)
        rules = write_scaled_rules(tmp_path / "rules", factor=DEMO_FACTOR)
        prometheus = Prometheus(tmp_path / "prom", f"127.0.0.1:{exporter.port}", rules, alertmanager.address,
                                interval=f"{REFRESH_INTERVAL:g}s")
        started.append(prometheus)
        wait_for("the exporter scraped", lambda: prometheus.query("rag_exporter_up == 1"), 60)
        time.sleep(WARM_UP)
        assert not pages(sink), f"a page on clean live traffic: {pages(sink)}"
        assert prometheus.query('component:rag_component_requests:increase1h{component="search"} >= 100'), \
            "the page's volume gate must hold before the incident, or the test would not test the page"

        incident = writer.start_incident("outage", component="search")
        wait_for(f"{PAGE} for search at the pager", lambda: pages(sink), PAGE_BOUND)
        time_to_page = time.time() - incident.started_at
        print(f"time to page: {time_to_page:.1f}s after the outage began")
        time.sleep(QUIET_AFTER_PAGE)
        assert pages(sink) == [("firing", PAGE, "search", "critical")], pages(sink)
    finally:
        for item in reversed(started):
            item.stop()
        sink.close()

"""End to end, real processes: PostgreSQL -> exporter -> Prometheus -> Alertmanager -> a webhook.

Only the waiting is shortened: Prometheus scrapes and evaluates every second, the rules'
`for:` are divided by 300 (15m -> 3s), and Alertmanager groups within a second or two.
Expressions, labels, annotations and routes are the committed ones.
"""

from __future__ import annotations

import pytest

from conftest import RELEASES, execute, one_utc_day
from harness import WebhookSink
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.demo import write_scaled_rules
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Alertmanager, ControlledPostgres, Prometheus, wait_for

pytestmark = pytest.mark.e2e

# The exporter scores yesterday by the wall clock, and the test makes the seed's yesterday anomalous: it must
# end on the day it seeded. Measured 24 s a release at load 1 to 2.5; the bound is the longest a passing run
# may take: Alertmanager's and Prometheus' starts (30 s each) and the test's six waits (30 + 5 x 60 s).
ALERTS_SECONDS = 420


def notifications(sink: WebhookSink, alertname: str, status: str, **labels: str) -> list[tuple[str, dict]]:
    """(receiver, alert) pairs the sink received for this alert, status and labels."""
    return [(receiver, alert) for receiver, payload in sink.received() for alert in payload["alerts"]
            if alert["labels"].get("alertname") == alertname and alert["status"] == status
            and all(alert["labels"].get(k) == v for k, v in labels.items())]


@pytest.mark.parametrize("release", RELEASES)
def test_alerts_reach_the_webhook_and_resolve(tmp_path, release):
    postgres = ControlledPostgres(tmp_path / "pg")
    sink = WebhookSink("127.0.0.1", 0)
    started: list = []
    try:
        init_db(postgres.dsn)
        seed(postgres.dsn, scale=DemoScale(days=40, chunks=1000), anomalies=False, at=one_utc_day(ALERTS_SECONDS))
        config = Config(dsn=postgres.dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=2,
                        chunk_refresh_interval=2, max_data_age=30, statement_timeout=1, connect_timeout=1)
        exporter = start_exporter(config, password=None)
        started.append(exporter)
        alertmanager = Alertmanager(tmp_path / "am", sink.url, release=release)
        started.append(alertmanager)
        rules = write_scaled_rules(tmp_path / "rules", factor=300, windows=False)
        prometheus = Prometheus(tmp_path / "prom", f"127.0.0.1:{exporter.port}", rules, alertmanager.address,
                                release=release)
        started.append(prometheus)

        wait_for("the exporter scraped and up", lambda: prometheus.query("rag_exporter_up == 1"), 30)
        assert not notifications(sink, "RagComponentLatencyAnomaly", "firing"), "no anomaly was injected yet"

        # 1. An anomalous day: yesterday's llm latency five times its usual (and so the end-to-end total's),
        # gpt-4o's tokens ten times theirs (critical on any weekday: a weekend's tokens are half a weekday's).
        # A day that has ended never pages: one ticket carries the day's anomalies, and llm's explains
        # (inhibits) the total's.
        # One transaction: a refresh between two commits would let llm's alert fire a refresh before gpt-4o's,
        # and the test's 1 s group_wait would send it alone first.
        execute(postgres.dsn, "UPDATE latency_metrics SET avg_time_ms = avg_time_ms * 5 WHERE component IN "
                              "('llm', 'total') AND date = (SELECT max(date) - 1 FROM latency_metrics); "
                              "UPDATE token_usage_daily SET total_tokens = total_tokens * 10 "
                              "WHERE model_name = 'gpt-4o' AND date = (SELECT max(date) - 1 FROM token_usage_daily)")
        wait_for("both anomalies firing in Prometheus", lambda: prometheus.query(
            'count(ALERTS{alertname=~"RagComponentLatencyAnomaly|RagModelTokenUsageAnomaly",severity="critical",'
            'alertstate="firing"}) == 3'), 60)
        wait_for("the day's anomalies at the ticket receiver",
                 lambda: notifications(sink, "RagComponentLatencyAnomaly", "firing", component="llm"), 60)
        first = next(payload for receiver, payload in sink.received()
                     if any(a["labels"]["alertname"] == "RagComponentLatencyAnomaly" for a in payload["alerts"]))
        print("first webhook payload:", first)
        assert first["receiver"] == "ticket" and first["status"] == "firing"
        assert first["groupLabels"] == {}, "one group per deployment, not per alert or component"
        fired = {(a["labels"]["alertname"], a["labels"].get("component") or a["labels"].get("model"),
                  a["labels"]["severity"]) for a in first["alerts"]}
        assert fired == {("RagComponentLatencyAnomaly", "llm", "critical"),
                         ("RagModelTokenUsageAnomaly", "gpt-4o", "critical")}, "warnings and total inhibited"
        alert = next(a for a in first["alerts"] if a["labels"]["alertname"] == "RagComponentLatencyAnomaly")
        assert alert["annotations"]["runbook_url"].endswith("#ragcomponentlatencyanomaly")
        assert "llm" in alert["annotations"]["description"]
        assert not notifications(sink, "RagComponentLatencyAnomaly", "firing", component="total")
        assert all(receiver == "ticket" for receiver, payload in sink.received()
                   if any(a["labels"]["alertname"].endswith("Anomaly") for a in payload["alerts"]))

        # 2. The database goes away: the exporter stays up and says so; then it comes back.
        postgres.stop()
        wait_for("RagAnalyticsRefreshFailing firing at the webhook",
                 lambda: notifications(sink, "RagAnalyticsRefreshFailing", "firing", reason="read_failed"), 60)
        assert prometheus.query('up{job="rag-analytics-exporter"} == 1'), "the exporter must stay scrapeable"
        postgres.start()
        wait_for("RagAnalyticsRefreshFailing resolved at the webhook",
                 lambda: notifications(sink, "RagAnalyticsRefreshFailing", "resolved", reason="read_failed"), 60)

        # 3. The exporter goes away.
        exporter.stop()
        started.remove(exporter)
        wait_for("RagAnalyticsExporterDown firing at the webhook",
                 lambda: notifications(sink, "RagAnalyticsExporterDown", "firing", reason="scrape_failed"), 60)
    finally:
        for item in reversed(started):
            item.stop()
        sink.close()
        postgres.close()

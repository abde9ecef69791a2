"""Backfill: the OpenMetrics file, promtool, a real Prometheus on the blocks, and live equality."""

from __future__ import annotations

import statistics
import subprocess
from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import query
from rag_analytics_exporter import cli
from rag_analytics_exporter.anomaly import BASELINES
from rag_analytics_exporter.backfill import backfill
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Prometheus

# One reading of the wall clock, taken once: the seed, the backfills and the live refreshes all run as of it,
# so a run that crosses midnight cannot make them disagree on the day. Not a fixed date: a real Prometheus
# keeps the backfilled blocks, and drops what is older than its retention.
NOW = datetime.now(timezone.utc)
TARGET = {"job": "rag-analytics-exporter", "instance": "exporter:9841"}
TODAY = NOW.date()


def midnight(day: date) -> float:
    return datetime.combine(day, time(), tzinfo=timezone.utc).timestamp()


@pytest.fixture
def seeded(dsn):
    seed(dsn, scale=DemoScale(days=45, chunks=500), at=NOW)
    return dsn


def test_file_format(seeded, tmp_path):
    output = tmp_path / "history.om"
    stats = backfill(seeded, None, Config(dsn=seeded), TODAY - timedelta(days=10), output, at=NOW,
                     target=TARGET)
    text = output.read_text()
    assert text.endswith("# EOF\n")
    assert stats["days"] >= 10 and stats["samples"] > 1000
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names)), "each family once"
    assert not any(n.startswith(("rag_exporter_", "rag_table_", "rag_chunk")) for n in names)
    last_allowed = (NOW - timedelta(hours=3)).timestamp()
    previous: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, stamp = line.rpartition(" ")
        assert stamp.isdigit(), f"timestamp in whole seconds: {line}"
        assert int(stamp) <= last_allowed, "nothing inside the last 3 hours"
        key = series.rpartition(" ")[0]
        assert int(stamp) > previous.get(key, 0), f"timestamps increase per series: {line}"
        previous[key] = int(stamp)
        assert int(stamp) % 3600 == 60, "one minute past the hour, never on midnight"


# Every baseline mode; and an SLO period longer than the lookback, where a refresh reads the period's days.
@pytest.mark.parametrize("settings", [{"baseline": b} for b in BASELINES] + [{"lookback_days": 10,
                                                                              "slo_period_days": 40}])
def test_backfilled_day_equals_the_live_scrape(seeded, tmp_path, settings):
    """Today's backfilled samples carry exactly what /metrics serves today, in every anomaly baseline mode."""
    at = min(NOW + timedelta(hours=4), datetime.combine(TODAY, time(23, 59, 59), tzinfo=timezone.utc))
    output = tmp_path / "history.om"
    config = Config(dsn=seeded, **settings)
    backfill(seeded, None, config, TODAY - timedelta(days=2), output, at=at, target=TARGET)
    backfilled = {}
    for family in text_string_to_metric_families(output.read_text()):
        for sample in family.samples:
            if float(sample.timestamp) >= midnight(TODAY):
                labels = {k: v for k, v in sample.labels.items() if k not in TARGET}
                assert {k: sample.labels[k] for k in TARGET} == TARGET
                backfilled[(sample.name, tuple(sorted(labels.items())))] = sample.value
    refresher = Refresher(Database(seeded, password=None, application_name="t", connect_timeout=2,
                                   statement_timeout=5, lock_timeout=1), config, clock=NOW.timestamp)
    refresher.refresh()
    # Counters count what one process saw since it started: they have no history to backfill.
    live = {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in build_registry(lambda: refresher.snapshot, clock=NOW.timestamp).collect()
            for s in family.samples
            if family.type != "counter"
            and not s.name.startswith(("rag_exporter_", "rag_table_", "rag_chunk", "rag_top_chunk"))}
    assert backfilled.keys() == live.keys()
    for key, value in live.items():
        assert backfilled[key] == pytest.approx(value, rel=1e-12), key
    if "lookback_days" in settings:
        return
    # The demo's seeded anomalies are built to seed.ANOMALY_Z in every mode, whichever weekday yesterday was.
    assert live[("rag_component_latency_zscore", (("component", "llm"),))] > 6
    assert live[("rag_model_tokens_zscore", (("model", "gpt-4o"),))] > 6


def test_prometheus_serves_the_backfilled_history_day_by_day(seeded, tmp_path, promtool):
    output = tmp_path / "history.om"
    # plain: the z-score below is cross-checked against the old design's formula
    backfill(seeded, None, Config(dsn=seeded, baseline="plain"), TODAY - timedelta(days=40), output, at=NOW,
             target=TARGET)
    data = tmp_path / "prom" / "data"
    result = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                             str(output), str(data)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    prometheus = Prometheus(tmp_path / "prom", "127.0.0.1:9", [], extra_args=["--storage.tsdb.retention.time=400d"])
    try:
        days = [TODAY - timedelta(days=i) for i in range(30, 0, -1)]
        # Daily totals: max_over_time over each UTC day, as the dashboards draw them.
        series = prometheus.query_range('max_over_time(rag_model_tokens{model="gpt-4o",token_type="prompt"}[1d])',
                                        midnight(days[0]) + 86400, midnight(days[-1]) + 86400, 86400)
        got = {datetime.fromtimestamp(t - 86400, timezone.utc).date(): float(v) for t, v in series[0]["values"]}
        expected = dict(query(seeded, "SELECT date, prompt_tokens::float FROM token_usage_daily "
                                      "WHERE model_name = 'gpt-4o' AND date BETWEEN %s AND %s", (days[0], days[-1])))
        assert got == expected
        # A percentile at noon of each day equals the row of that day.
        for day in days[::7]:
            (sample,) = prometheus.query('last_over_time(rag_component_latency_seconds'
                                         '{component="llm",statistic="p95"}[1h])', at=midnight(day) + 12 * 3600)
            (ms,) = query(seeded, "SELECT p95_time_ms FROM latency_metrics WHERE component = 'llm' AND date = %s",
                          (day,))[0]
            assert float(sample["value"][1]) == pytest.approx(ms / 1000, rel=1e-12)
        # The z-score served on a day scores the day before against the 30 before that.
        day = days[-5]
        rows = dict(query(seeded, "SELECT date, avg_time_ms FROM latency_metrics WHERE component = 'search' "
                                  "AND date BETWEEN %s AND %s", (day - timedelta(days=31), day - timedelta(days=1))))
        scored, baseline = rows.pop(day - timedelta(days=1)), list(rows.values())
        spread = max(statistics.stdev(baseline), 0.01 * statistics.mean(baseline))
        (sample,) = prometheus.query('last_over_time(rag_component_latency_zscore{component="search"}[1h])',
                                     at=midnight(day) + 6 * 3600)
        assert float(sample["value"][1]) == pytest.approx((scored - statistics.mean(baseline)) / spread, rel=1e-9)
    finally:
        prometheus.stop()


def test_the_command_adds_the_deployment_labels_and_refuses_bad_ones(seeded, tmp_path, capsys):
    """--label gives the history the deployment's target labels, so it joins that deployment's live series."""
    output = tmp_path / "history.om"
    assert cli.main(["backfill", "--dsn", seeded, "--days", "2", "--instance", "a1:9841", "--output", str(output),
                     "--label", "environment=production", "--label", "rag_service=support bot",
                     "--at", NOW.isoformat()]) == 0
    samples = [line for line in output.read_text().splitlines() if not line.startswith("#")]
    assert samples and all('environment="production"' in line and 'instance="a1:9841"' in line
                           and 'rag_service="support bot"' in line for line in samples)
    for bad, reason in (("job=x", "job has its own option, --job"), ("environment", "is not NAME=VALUE"),
                        ("__name__=x", "is not NAME=VALUE"), ("1env=x", "is not NAME=VALUE")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["backfill", "--dsn", seeded, "--output", str(output), "--label", bad])
        assert exit_info.value.code == 2
        assert "--label" in (err := capsys.readouterr().err) and reason in err, err


@pytest.mark.parametrize("step", [15, 60, 3600])
def test_every_sample_of_a_day_lies_within_that_day(step):
    """At any step, a day's totals never reach the next day (where the next midnight's 1-day window sees them)."""
    from rag_analytics_exporter.backfill import _instants

    day = date(2026, 11, 20)
    instants = _instants(day, step, datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert instants[0] == midnight(day) + 60
    assert max(instants) < midnight(day + timedelta(days=1)), f"{max(instants) - midnight(day) - 86400:g}s past"
    assert all(b - a == step for a, b in pairwise(instants))

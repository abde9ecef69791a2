"""Refresh against a real PostgreSQL: exact values on /metrics for rows the test inserted itself."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import pytest

from conftest import NOON, execute, query
from rag_analytics_exporter.anomaly import BASELINES
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import ANOMALY_COMPONENT, ANOMALY_MODEL, ANOMALY_Z, DemoScale, seed

# The refreshes run at NOON and the rows are dated from it (written a minute before), so no midnight and no
# hour of the run comes between the rows' day and the day the refresh serves.
TODAY = NOON.date()
YESTERDAY = TODAY - timedelta(days=1)
WRITTEN = NOON - timedelta(minutes=1)


def make_refresher(dsn: str, clock: Callable[[], float] = NOON.timestamp, **overrides) -> Refresher:
    config = Config(dsn=dsn, **overrides)
    database = Database(dsn, password=None, application_name="test", connect_timeout=2, statement_timeout=5,
                        lock_timeout=1)
    return Refresher(database, config, clock=clock)


def sample(refresher: Refresher, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value a scrape serves as the last refresh ends, on the refresh's own clock: the wall clock would
    withhold a section refreshed at NOON as older than max_data_age, and serve another day."""
    registry = build_registry(lambda: refresher.snapshot, clock=lambda: refresher.snapshot.health.last_attempt)
    return registry.get_sample_value(name, labels or {})


def insert_latency(dsn: str, day: date, component: str, requests: int, errors: int, avg: float | None,
                   p50: float | None = None, p99: float | None = None) -> None:
    execute(dsn, "INSERT INTO latency_metrics (date, component, request_count, error_count, avg_time_ms,"
                 " p50_time_ms, p90_time_ms, p95_time_ms, p99_time_ms, updated_at)"
                 " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (day, component, requests, errors, avg, p50, p50, p99, p99, WRITTEN))


def test_init_db_twice_then_seed_demo(fresh_db):
    cli = [sys.executable, "-m", "rag_analytics_exporter.cli"]
    for _ in range(2):
        result = subprocess.run([*cli, "init-db", "--dsn", fresh_db], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    tables = {r[0] for r in query(fresh_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"latency_metrics", "token_usage_daily", "citation_daily", "chunk_retrieval_stats",
                      "feedback_daily", "feedback_tags_daily", "follow_up_patterns_daily"}
    # Seeded and refreshed as of one instant: a run that crosses midnight would score another day.
    now = NOON.timestamp()
    at = NOON.isoformat()
    result = subprocess.run([*cli, "seed-demo", "--dsn", fresh_db, "--days", "40", "--at", at], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert query(fresh_db, "SELECT count(DISTINCT date) FROM latency_metrics")[0][0] == 40
    # a second seed would overwrite real data: refused without --replace
    again = subprocess.run([*cli, "seed-demo", "--dsn", fresh_db], capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "--replace" in again.stderr

    refresher = make_refresher(fresh_db, clock=lambda: now)
    refresher.refresh()
    assert sample(refresher, "rag_exporter_up") == 1.0
    assert sample(refresher, "rag_component_latency_zscore", {"component": "llm"}) > 6
    assert sample(refresher, "rag_model_tokens_zscore", {"model": "gpt-4o"}) > 6
    assert sample(refresher, "rag_component_error_ratio", {"component": "search"}) > 0.05
    assert sample(refresher, "rag_feedback_negative_ratio") > 0.2


# Seeded as of a Monday to a Sunday (2026-12-07 is a Monday), mid-afternoon, and refreshed a minute later.
# Before issue 29 gpt-4o's surge scored 5.6 in plain as of the Monday (yesterday a Sunday: under the
# critical alert's 6) and 6.6 as of the Sunday.
@pytest.mark.parametrize("weekday", range(7), ids=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
def test_the_demo_data_pages_its_zscores_in_every_mode_on_every_weekday(dsn, weekday):
    at = datetime(2026, 12, 7 + weekday, 15, 9, tzinfo=timezone.utc)
    seed(dsn, scale=DemoScale(days=60, chunks=100), at=at, anomalies_today=False, replace=True)
    for mode in BASELINES:
        refresher = make_refresher(dsn, clock=lambda: at.timestamp() + 60, baseline=mode)
        refresher.refresh()
        assert sample(refresher, "rag_exporter_up") == 1.0
        latency = sample(refresher, "rag_component_latency_zscore", {"component": ANOMALY_COMPONENT})
        tokens = sample(refresher, "rag_model_tokens_zscore", {"model": ANOMALY_MODEL})
        assert latency is not None and latency >= ANOMALY_Z, (mode, latency)
        assert tokens is not None and tokens >= ANOMALY_Z, (mode, tokens)


def test_latency_row_in_ms_appears_in_seconds(dsn):
    insert_latency(dsn, TODAY, "llm", 1000, 25, 1500.0, p50=1200.0, p99=4250.0)
    refresher = make_refresher(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_component_latency_seconds", {"component": "llm", "statistic": "mean"}) == 1.5
    assert sample(refresher, "rag_component_latency_seconds", {"component": "llm", "statistic": "p50"}) == 1.2
    assert sample(refresher, "rag_component_latency_seconds", {"component": "llm", "statistic": "p99"}) == 4.25
    assert sample(refresher, "rag_component_requests", {"component": "llm"}) == 1000
    assert sample(refresher, "rag_component_errors", {"component": "llm"}) == 25
    assert sample(refresher, "rag_component_error_ratio", {"component": "llm"}) == 0.025


def test_zscore_equals_the_hand_computed_one(dsn):
    baseline = [1000.0 + 10 * (i % 7) for i in range(30)]  # the 30 days before yesterday
    for i, avg in enumerate(baseline):
        insert_latency(dsn, YESTERDAY - timedelta(days=30 - i), "search", 500, 1, avg)
    insert_latency(dsn, YESTERDAY, "search", 500, 1, 1400.0)
    insert_latency(dsn, YESTERDAY - timedelta(days=31), "search", 500, 1, 99999.0)  # outside the window
    insert_latency(dsn, TODAY, "search", 100, 0, 5000.0)  # today is not scored
    refresher = make_refresher(dsn, baseline="plain")  # the old design's formula, by hand
    refresher.refresh()
    mean, sd = statistics.mean(baseline), statistics.stdev(baseline)
    assert sample(refresher, "rag_component_latency_zscore", {"component": "search"}) == pytest.approx(
        (1400.0 - mean) / sd, rel=1e-9)
    assert sample(refresher, "rag_component_latency_baseline_mean_seconds", {"component": "search"}) == (
        pytest.approx(mean / 1000))
    assert sample(refresher, "rag_component_latency_baseline_stddev_seconds", {"component": "search"}) == (
        pytest.approx(sd / 1000))
    assert sample(refresher, "rag_component_latency_scored_seconds", {"component": "search"}) == 1.4
    assert sample(refresher, "rag_component_latency_baseline_samples", {"component": "search"}) == 30
    midnight = datetime.combine(YESTERDAY, datetime.min.time(), tzinfo=timezone.utc).timestamp()
    assert sample(refresher, "rag_anomaly_scored_date_timestamp_seconds") == midnight


def test_token_zscore_and_usage_values(dsn):
    for i in range(10):
        execute(dsn, "INSERT INTO token_usage_daily VALUES (%s, 'gpt-4o', 10, 800, 200, %s, 1.5, %s)",
                (YESTERDAY - timedelta(days=10 - i), 1000 + 100 * (i % 2), WRITTEN))
    execute(dsn, "INSERT INTO token_usage_daily VALUES (%s, 'gpt-4o', 10, 800, 200, 5000, 1.5, %s)",
            (YESTERDAY, WRITTEN))
    execute(dsn, "INSERT INTO token_usage_daily VALUES (%s, 'gpt-4o', 7, 700, 300, 1000, 2.125, %s)",
            (TODAY, WRITTEN))
    refresher = make_refresher(dsn, baseline="plain")  # the old design's formula, by hand
    refresher.refresh()
    baseline = [1000 + 100 * (i % 2) for i in range(10)]
    assert sample(refresher, "rag_model_tokens_zscore", {"model": "gpt-4o"}) == pytest.approx(
        (5000 - statistics.mean(baseline)) / statistics.stdev(baseline))
    assert sample(refresher, "rag_model_tokens", {"model": "gpt-4o", "token_type": "prompt"}) == 700
    assert sample(refresher, "rag_model_tokens", {"model": "gpt-4o", "token_type": "completion"}) == 300
    assert sample(refresher, "rag_model_cost_usd", {"model": "gpt-4o"}) == 2.125
    assert sample(refresher, "rag_model_requests", {"model": "gpt-4o"}) == 7


def test_short_baseline_has_no_zscore_but_keeps_the_current_value(dsn):
    for i in range(3):
        insert_latency(dsn, YESTERDAY - timedelta(days=i + 1), "llm", 10, 0, 1000.0 + i)
    insert_latency(dsn, YESTERDAY, "llm", 10, 0, 3000.0)
    insert_latency(dsn, TODAY, "llm", 10, 0, 2000.0)
    refresher = make_refresher(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_component_latency_zscore", {"component": "llm"}) is None
    assert sample(refresher, "rag_component_latency_seconds", {"component": "llm", "statistic": "mean"}) == 2.0


def test_yesterdays_totals_are_not_served_as_today_but_its_zscore_is(dsn):
    """After midnight, before the ETL writes the new day, the per-day gauges are absent."""
    for i in range(10):
        insert_latency(dsn, YESTERDAY - timedelta(days=i + 1), "llm", 10, 0, 1000.0 + 10 * (i % 2))
    insert_latency(dsn, YESTERDAY, "llm", 10, 0, 3000.0)
    # Rewritten an hour after it ended, yesterday is finished and scored at any time of day
    # (docs/metrics.md); written "now" it would count as partial from 00:00 to 01:00 UTC.
    written = datetime.combine(TODAY, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=1)
    execute(dsn, "UPDATE latency_metrics SET updated_at = %s WHERE date = %s", (written, YESTERDAY))
    refresher = make_refresher(dsn, clock=lambda: written.timestamp() + 60)
    refresher.refresh()
    assert sample(refresher, "rag_component_latency_seconds", {"component": "llm", "statistic": "mean"}) is None
    assert sample(refresher, "rag_component_requests", {"component": "llm"}) is None
    assert sample(refresher, "rag_component_latency_zscore", {"component": "llm"}) > 6
    assert sample(refresher, "rag_table_newest_date_timestamp_seconds", {"table": "latency_metrics"}) == (
        datetime.combine(YESTERDAY, datetime.min.time(), tzinfo=timezone.utc).timestamp())


def test_open_label_sets_are_capped_with_other(dsn):
    for i in range(8):
        execute(dsn, "INSERT INTO feedback_tags_daily VALUES (%s, %s, %s, %s, %s)",
                (TODAY, f"tag{i}", 10 * i, 1, WRITTEN))
    refresher = make_refresher(dsn, max_tags=3)
    refresher.refresh()
    tags = {s.labels["tag"] for m in build_registry(lambda: refresher.snapshot, clock=NOON.timestamp).collect()
            if m.name == "rag_feedback_tag" for s in m.samples}
    assert tags == {"tag7", "tag6", "tag5", "other"}
    # other = tags 0..4: positives 0+10+20+30+40, negatives 5
    assert sample(refresher, "rag_feedback_tag", {"tag": "other", "sentiment": "positive"}) == 100
    assert sample(refresher, "rag_feedback_tag", {"tag": "other", "sentiment": "negative"}) == 5


def test_dirty_rows_are_counted_and_skipped(dsn):
    insert_latency(dsn, TODAY, "llm", 100, 1, 1000.0)
    insert_latency(dsn, TODAY, "bad-nan", 100, 1, float("nan"))
    insert_latency(dsn, TODAY, "bad-neg", -4, 0, 10.0)
    insert_latency(dsn, TODAY, "bad-errors", 10, 20, 10.0)
    insert_latency(dsn, TODAY, "", 10, 1, 10.0)
    refresher = make_refresher(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_exporter_up") == 1.0
    assert sample(refresher, "rag_component_requests", {"component": "llm"}) == 100
    for reason in ("non_finite", "negative_value", "inconsistent_counts", "empty_key"):
        assert sample(refresher, "rag_exporter_rows_rejected", {"table": "latency_metrics", "reason": reason}) == 1
    assert sample(refresher, "rag_exporter_rows_read", {"table": "latency_metrics"}) == 5


def test_deleted_rows_stop_being_exported(dsn):
    execute(dsn, "INSERT INTO token_usage_daily VALUES (%s, 'a', 1, 1, 1, 2, 0.1, %s), "
                 "(%s, 'b', 1, 1, 1, 2, 0.1, %s)", (TODAY, WRITTEN, TODAY, WRITTEN))
    refresher = make_refresher(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_model_requests", {"model": "b"}) == 1
    execute(dsn, "DELETE FROM token_usage_daily WHERE model_name = 'b'")
    refresher.refresh()
    assert sample(refresher, "rag_model_requests", {"model": "a"}) == 1
    assert sample(refresher, "rag_model_requests", {"model": "b"}) is None


def test_a_missing_table_fails_only_itself(dsn):
    insert_latency(dsn, TODAY, "llm", 100, 1, 1000.0)
    execute(dsn, "DROP TABLE citation_daily")
    refresher = make_refresher(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_exporter_up") == 0.0
    assert sample(refresher, "rag_exporter_table_up", {"table": "citation_daily"}) == 0.0
    assert sample(refresher, "rag_exporter_table_up", {"table": "latency_metrics"}) == 1.0
    assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "query"}) == 1.0
    assert sample(refresher, "rag_component_requests", {"component": "llm"}) == 100


def test_unreachable_database_is_reported_not_raised(tmp_path):
    refresher = make_refresher(f"host={tmp_path} port=1 dbname=none user=nobody")
    refresher.refresh()
    refresher.refresh()
    assert sample(refresher, "rag_exporter_up") == 0.0
    assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "connection"}) == 2.0
    assert sample(refresher, "rag_exporter_last_refresh_success_timestamp_seconds") is None
    assert sample(refresher, "rag_exporter_refreshes_total") == 2.0


def test_table_freshness_metrics(dsn):
    execute(dsn, "INSERT INTO feedback_daily VALUES (%s, 8, 2, '2026-01-02T03:04:05Z')", (TODAY,))
    refresher = make_refresher(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_table_updated_timestamp_seconds", {"table": "feedback_daily"}) == (
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp())
    assert sample(refresher, "rag_table_newest_date_timestamp_seconds", {"table": "feedback_daily"}) == (
        datetime.combine(TODAY, datetime.min.time(), tzinfo=timezone.utc).timestamp())
    assert sample(refresher, "rag_feedback", {"sentiment": "positive"}) == 8
    assert sample(refresher, "rag_feedback_negative_ratio") == 0.2


def test_chunk_aggregates_match_independent_sql(dsn):
    rows = [(f"c{i}", f"d{i % 3}", 100, i * 3, i, (i % 11) / 10) for i in range(1, 200)]
    rows += [("never", "d0", 100, 0, 0, None), ("nan", "d0", 100, 5, 1, float("nan")),
             ("high", "d0", 100, 5, 1, 1.5), ("neg", "d0", 100, -5, 0, 0.5)]
    conn_rows = ",".join(["(%s,%s,%s,%s,%s,%s)"] * len(rows))
    execute(dsn, "INSERT INTO chunk_retrieval_stats (chunk_id, document_id, chunk_size_chars, retrieval_count,"
                 f" citation_count, avg_relevance) VALUES {conn_rows}", [v for r in rows for v in r])
    refresher = make_refresher(dsn, top_chunks=3)
    refresher.refresh()
    expected = dict(query(dsn, "SELECT least(width_bucket(avg_relevance, 0, 1, 10), 10) - 1, count(*) "
                               "FROM chunk_retrieval_stats WHERE avg_relevance BETWEEN 0 AND 1 "
                               "AND retrieval_count >= 0 GROUP BY 1"))
    for bucket in range(10):
        label = f"{bucket / 10:.1f}-{(bucket + 1) / 10:.1f}"
        assert sample(refresher, "rag_chunk_relevance_chunks", {"relevance": label}) == expected.get(bucket, 0)
    assert sample(refresher, "rag_chunks") == 200  # 199 scored + the never-retrieved one
    assert sample(refresher, "rag_chunk_retrievals") == sum(i * 3 for i in range(1, 200))
    for reason in ("non_finite", "out_of_range", "negative_count"):
        assert sample(refresher, "rag_exporter_rows_rejected", {"table": "chunk_retrieval_stats",
                                                                "reason": reason}) == 1
    assert sample(refresher, "rag_top_chunk_retrievals", {"chunk_id": "c199", "document_id": "d1"}) == 597
    assert sample(refresher, "rag_top_chunk_citation_ratio", {"chunk_id": "c199", "document_id": "d1"}) == (
        pytest.approx(199 / 597))


def test_chunk_data_stays_fresh_between_its_slower_reads_and_ages_in_an_outage(dsn):
    """The chunk table is read every chunk_interval; reaching the database keeps it confirmed,
    and an outage withholds it after max_data_age like every other table."""
    execute(dsn, "INSERT INTO chunk_retrieval_stats (chunk_id, document_id, retrieval_count, citation_count,"
                 " avg_relevance) VALUES ('c', 'd', 5, 1, 0.5)")
    clock = [NOON.timestamp()]
    config = Config(dsn=dsn, refresh_interval=60, chunk_refresh_interval=600, max_data_age=300)
    database = Database(dsn, password=None, application_name="t", connect_timeout=2, statement_timeout=5,
                        lock_timeout=1)
    refresher = Refresher(database, config, clock=lambda: clock[0])
    registry = build_registry(lambda: refresher.snapshot, clock=lambda: clock[0])
    for _ in range(8):  # 8 minutes of refreshes: one chunk read, then seven that find it not due
        refresher.refresh()
        clock[0] += 60
    assert registry.get_sample_value("rag_chunks") == 1, "confirmed by each refresh that reached the database"
    database._dsn = "host=/nonexistent"  # the database becomes unreachable
    database.close()
    refresher.refresh()
    clock[0] += 240
    assert registry.get_sample_value("rag_chunks") == 1, "still within max_data_age of the last confirmation"
    clock[0] += 120
    assert registry.get_sample_value("rag_chunks") is None
    assert registry.get_sample_value("rag_exporter_table_data_withheld", {"table": "chunk_retrieval_stats"}) == 1


def test_a_missing_total_component_is_logged_once_and_served_as_a_data_problem(dsn, caplog):
    insert_latency(dsn, TODAY, "end_to_end", 100, 1, 900.0)
    insert_latency(dsn, TODAY, "llm", 100, 1, 500.0)
    refresher = make_refresher(dsn)
    with caplog.at_level("WARNING", logger="rag_analytics_exporter.refresh"):
        refresher.refresh()
        refresher.refresh()
    warnings = [r.getMessage() for r in caplog.records if "component='total'" in r.getMessage()]
    assert len(warnings) == 1 and "end_to_end, llm" in warnings[0], warnings
    problem = {"table": "latency_metrics", "reason": "no_total_component"}
    assert sample(refresher, "rag_exporter_data_problem", problem) == 1
    insert_latency(dsn, TODAY, "total", 100, 1, 900.0)
    refresher.refresh()
    assert sample(refresher, "rag_exporter_data_problem", problem) == 0

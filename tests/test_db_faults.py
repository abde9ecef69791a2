"""Faults found by trying to break the refresh (issue 20, items 1-7), each on a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import psycopg2
import pytest

from conftest import NOON, execute, query
from rag_analytics_exporter.builders import LATE_WRITE_SECONDS, day_finished
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import FUTURE_TOLERANCE_SECONDS, Database, TableRead, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed
from rag_analytics_exporter.snapshot import midnight_utc
from stack import wait_for

# Refreshed and scraped at NOON unless a test sets its own clock, with rows dated from it: the wall clock
# would let a midnight come between the rows' day and the day the refresh serves.
TODAY = NOON.date()
YESTERDAY = TODAY - timedelta(days=1)
APP = "rag-exporter-faults"


def refresher_for(dsn: str, clock=NOON.timestamp, **overrides) -> Refresher:
    database = Database(dsn, password=None, application_name=APP, connect_timeout=2, statement_timeout=5,
                        lock_timeout=1)
    return Refresher(database, Config(dsn=dsn, **overrides), clock=clock)


def sample(refresher: Refresher, name: str, labels: dict[str, str] | None = None, now: float | None = None):
    """Scraped at `now`, else as the last refresh ended (on the refresh's clock)."""
    at = now if now is not None else refresher.snapshot.health.last_attempt
    return build_registry(lambda: refresher.snapshot, clock=lambda: at).get_sample_value(name, labels or {})


def at(day: date, hours: float) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=hours)


# 1. A day the ETL has not finished is not scored.

@pytest.mark.parametrize("baseline", ["plain", "weekday"])
def test_a_day_the_etl_is_still_writing_is_not_scored_until_it_moves_on(dsn, baseline):
    """The issue's repro: 60 days, yesterday at 30 % written at 00:03, a refresh at 00:05."""
    seed(dsn, scale=DemoScale(days=60, chunks=100), at=at(YESTERDAY, 23.9), anomalies=False)
    for table, columns in (("token_usage_daily", ("request_count", "prompt_tokens", "completion_tokens",
                                                  "total_tokens")),
                           ("latency_metrics", ("request_count", "error_count"))):
        scaled = ", ".join(f"{c} = round({c} * 0.3)" for c in columns)
        execute(dsn, f"UPDATE {table} SET {scaled}, updated_at = %s WHERE date = %s", (at(TODAY, 0.05), YESTERDAY))
    clock = [at(TODAY, 5 / 60).timestamp()]
    refresher = refresher_for(dsn, clock=lambda: clock[0], baseline=baseline)
    refresher.refresh()
    now = clock[0]
    assert sample(refresher, "rag_exporter_up", now=now) == 1
    assert sample(refresher, "rag_model_tokens_zscore", {"model": "gpt-4o"}, now=now) is None
    assert sample(refresher, "rag_component_latency_zscore", {"component": "llm"}, now=now) is None
    for table in ("token_usage_daily", "latency_metrics"):
        assert sample(refresher, "rag_anomaly_scored_date_complete", {"table": table}, now=now) == 0
    assert sample(refresher, "rag_anomaly_scored_date_timestamp_seconds", now=now) == midnight_utc(YESTERDAY)

    # An hour and a half later, still no row of today: the 00:03 write is not a late rewrite.
    clock[0] = at(TODAY, 1.5).timestamp()
    refresher.refresh()
    assert sample(refresher, "rag_model_tokens_zscore", {"model": "gpt-4o"}, now=clock[0]) is None

    # The ETL moves on to today: yesterday is final, and scored as it stands.
    execute(dsn, "INSERT INTO token_usage_daily VALUES (%s, 'gpt-4o', 1, 10, 10, 20, 0.01, %s)",
            (TODAY, at(TODAY, 1.6)))
    clock[0] = at(TODAY, 1.7).timestamp()
    refresher.refresh()
    now = clock[0]
    assert sample(refresher, "rag_anomaly_scored_date_complete", {"table": "token_usage_daily"}, now=now) == 1
    assert sample(refresher, "rag_model_tokens_zscore", {"model": "gpt-4o"}, now=now) < -2
    assert sample(refresher, "rag_anomaly_scored_date_complete", {"table": "latency_metrics"}, now=now) == 0
    refresher._db.close()


def test_day_finished_rule():
    day = YESTERDAY
    end = midnight_utc(day + timedelta(days=1))

    def read(newest: date | None, written: float | None) -> TableRead:
        stamp = None if written is None else datetime.fromtimestamp(written, timezone.utc)
        return TableRead("t", (), (), newest, stamp, previous_day_updated_at=stamp)

    assert day_finished(read(TODAY, end + 60), day), "a row of a later day: the ETL moved on"
    assert not day_finished(read(day, end + 180), day), "written just after midnight: maybe partial"
    assert not day_finished(read(day, end + LATE_WRITE_SECONDS - 1), day)
    assert day_finished(read(day, end + LATE_WRITE_SECONDS), day), "rewritten long after it ended"
    assert not day_finished(read(day - timedelta(days=1), None), day), "no row of the day at all"
    assert not day_finished(read(None, None), day)


# 2. Any exception in a refresh fails its table, ends the transaction, and moves the health gauges.

def test_undecodable_text_in_a_sql_ascii_database_fails_only_its_table(pg_server):
    name = f"t_ascii_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    dsn = pg_server.get_uri(database=name)
    try:
        init_db(dsn)
        execute(dsn, "INSERT INTO latency_metrics (date, component, request_count, error_count, avg_time_ms)"
                     " VALUES (%s, E'recherche-vectorielle-\\xc3\\xa9', 10, 0, 100)", (TODAY,))  # é in UTF-8
        execute(dsn, "INSERT INTO feedback_daily VALUES (%s, 8, 2, %s)", (TODAY, NOON))
        refresher = refresher_for(dsn)
        for attempt in (1, 2):
            refresher.refresh()
            assert sample(refresher, "rag_exporter_refreshes_total") == attempt
            assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "query"}) == attempt
        assert sample(refresher, "rag_exporter_up") == 0
        assert sample(refresher, "rag_exporter_table_up", {"table": "latency_metrics"}) == 0
        assert sample(refresher, "rag_exporter_table_up", {"table": "feedback_daily"}) == 1
        assert sample(refresher, "rag_feedback", {"sentiment": "positive"}) == 8
        assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "connection"}) == 0
        states = query(dsn, "SELECT state FROM pg_stat_activity WHERE application_name = %s", (APP,))
        assert states == [("idle",)], "the read transaction was left open"
        refresher._db.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


# 3. A resource error in one table's query fails that table alone, as kind="query".

def test_temp_file_limit_in_one_query_fails_only_that_table(dsn):
    execute(dsn, "INSERT INTO latency_metrics (date, component, request_count, error_count, avg_time_ms)"
                 " VALUES (%s, 'llm', 10, 0, 100)", (TODAY,))
    execute(dsn, "INSERT INTO token_usage_daily SELECT %s - (g %% 30), 'model-' || g, 1, 1, 1, 2, 0.1, %s"
                 " FROM generate_series(1, 60000) g", (TODAY, NOON))
    dbname = query(dsn, "SELECT current_database()")[0][0]
    # A sort of 60,000 rows in 64 kB of memory spills to disk, past a 64 kB temp_file_limit (SQLSTATE 53400).
    for setting in ("temp_file_limit = '64kB'", "work_mem = '64kB'", "enable_indexscan = off",
                    "enable_bitmapscan = off"):
        execute(dsn, f'ALTER DATABASE "{dbname}" SET {setting}')
    refresher = refresher_for(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_exporter_table_up", {"table": "token_usage_daily"}) == 0
    for table in ("latency_metrics", "citation_daily", "feedback_daily", "follow_up_patterns_daily"):
        assert sample(refresher, "rag_exporter_table_up", {"table": table}) == 1, table
    assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "query"}) == 1
    assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "connection"}) == 0
    assert sample(refresher, "rag_component_requests", {"component": "llm"}) == 10
    refresher._db.close()


# 4. A future updated_at does not hide a stopped ETL; the row's counts are still served.

def test_future_updated_at_is_left_out_of_freshness_and_its_counts_are_kept(dsn):
    # "The future" is past both clocks, the exporter's and PostgreSQL's now(), which no test can pin: one
    # reading of the wall clock, for the refresh and the scrape too, and the rows dated from it.
    now = datetime.now(timezone.utc)
    today = now.date()
    written = now - timedelta(minutes=10)
    execute(dsn, "INSERT INTO feedback_tags_daily VALUES (%s, 'ok', 3, 1, %s), (%s, 'skewed', 1, 1, %s),"
                 " (%s, 'local-time', 5, 5, %s)",
            (today, written, today, now + timedelta(seconds=FUTURE_TOLERANCE_SECONDS / 2),
             today, now + timedelta(hours=5)))
    execute(dsn, "INSERT INTO chunk_retrieval_stats (chunk_id, document_id, retrieval_count, citation_count,"
                 " avg_relevance, updated_at) VALUES ('a', 'd', 5, 1, 0.5, %s), ('b', 'd', 9, 1, 0.5, %s)",
            (written, now + timedelta(hours=5)))
    refresher = refresher_for(dsn, clock=now.timestamp)
    refresher.refresh()
    table = {"table": "feedback_tags_daily"}
    assert sample(refresher, "rag_table_updated_timestamp_seconds", table) == pytest.approx(
        (now + timedelta(seconds=FUTURE_TOLERANCE_SECONDS / 2)).timestamp()), "skew within the tolerance is kept"
    assert sample(refresher, "rag_table_updated_at_unusable_rows", table | {"reason": "future"}) == 1
    assert sample(refresher, "rag_table_updated_at_unusable_rows", table | {"reason": "null"}) == 0
    assert sample(refresher, "rag_exporter_rows_rejected", table | {"reason": "future_updated_at"}) == 0
    assert sample(refresher, "rag_exporter_rows_read", table) == 3
    # A clock 5 hours off is the ETL's mistake, not the traffic's: the row's counts are served.
    assert sample(refresher, "rag_feedback_tag", {"tag": "local-time", "sentiment": "positive"}) == 5
    assert sample(refresher, "rag_feedback_tag", {"tag": "skewed", "sentiment": "positive"}) == 1
    chunks = {"table": "chunk_retrieval_stats"}
    assert sample(refresher, "rag_table_updated_timestamp_seconds", chunks) == written.timestamp()
    assert sample(refresher, "rag_exporter_rows_rejected", chunks | {"reason": "future_updated_at"}) == 1
    assert sample(refresher, "rag_chunks") == 1
    assert sample(refresher, "rag_top_chunk_retrievals", {"chunk_id": "b", "document_id": "d"}) is None
    refresher._db.close()


# 5. A connection the server closed while idle is reopened within the refresh.

def test_a_connection_closed_by_idle_session_timeout_is_reopened_in_the_same_refresh(dsn):
    dbname = query(dsn, "SELECT current_database()")[0][0]
    execute(dsn, f'ALTER DATABASE "{dbname}" SET idle_session_timeout = \'300ms\'')
    execute(dsn, "INSERT INTO feedback_daily VALUES (%s, 8, 2, %s)", (TODAY, NOON))
    refresher = refresher_for(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_exporter_up") == 1
    wait_for("the server to close the idle session", lambda: query(
        dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,))[0][0] == 0, 10)
    assert not refresher._db._conn.closed, "psycopg2 has not noticed yet: the next refresh finds out"
    refresher.refresh()
    assert sample(refresher, "rag_exporter_up") == 1
    assert sample(refresher, "rag_exporter_refresh_errors_total", {"kind": "connection"}) == 0
    assert sample(refresher, "rag_feedback", {"sentiment": "positive"}) == 8
    refresher._db.close()


# 7. Numbers: an overflowing weighted mean, and invalid chunks taking top-N slots.

def test_a_weighted_mean_whose_products_overflow_stays_finite(dsn):
    execute(dsn, "INSERT INTO latency_metrics (date, component, request_count, error_count, avg_time_ms)"
                 " VALUES (%s, 'huge', 1000000, 0, 1e306)", (TODAY,))
    refresher = refresher_for(dsn)
    refresher.refresh()
    assert sample(refresher, "rag_component_latency_seconds", {"component": "huge", "statistic": "mean"}) == 1e303
    refresher._db.close()


def test_invalid_chunks_do_not_take_top_n_slots(dsn):
    execute(dsn, "INSERT INTO chunk_retrieval_stats (chunk_id, document_id, retrieval_count, citation_count,"
                 " avg_relevance) SELECT 'c' || g, 'd', 100 + g, 1, 0.5 FROM generate_series(1, 20) g")
    execute(dsn, "INSERT INTO chunk_retrieval_stats (chunk_id, document_id, retrieval_count, citation_count,"
                 " avg_relevance) VALUES ('nan', 'd', 1000, 1, 'NaN'), ('high', 'd', 999, 1, 1.5),"
                 " ('neg', 'd', 998, -1, 0.5)")
    refresher = refresher_for(dsn, top_chunks=10)
    refresher.refresh()
    families = {m.name: m for m in build_registry(lambda: refresher.snapshot, clock=NOON.timestamp).collect()}
    served = {s.labels["chunk_id"] for s in families["rag_top_chunk_retrievals"].samples}
    assert served == {f"c{g}" for g in range(11, 21)}
    refresher._db.close()

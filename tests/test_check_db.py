"""check-db on a real PostgreSQL: a sound database passes; a crafted one shows each problem of issue 31, and the
command exits non-zero because each would empty a panel or silence an alert."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg2
import pytest

from conftest import NOON, execute, one_utc_day
from rag_analytics_exporter.checkdb import ERROR, WARNING, check, exit_code, render, written_ago
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import DatabaseUnavailable
from rag_analytics_exporter.seed import DemoScale, seed

CLI = [sys.executable, "-m", "rag_analytics_exporter.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_EXPORTER_", "PG"))}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def findings(reports, table: str, level: str) -> list[str]:
    (report,) = [r for r in reports if r.table == table]
    return [text for found, text in report.findings if found == level]


# check-db as a process reads the wall clock: the rows are seeded as of one reading of it, far enough from
# 00:00 UTC for the seed and the command to end on the same day: measured up to 4 s (the slow view's test) at
# load 1 to 2.5, and a minute leaves room for a loaded machine.
CHECK_DB_SECONDS = 60


@pytest.fixture
def seeded(dsn):
    seed(dsn, scale=DemoScale(days=12, chunks=300), anomalies=False, at=one_utc_day(CHECK_DB_SECONDS))
    return dsn


def test_the_demo_data_passes_and_says_what_would_be_served(seeded):
    result = run("check-db", "--dsn", seeded, "--pause", "0.5")
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout and result.stdout.strip().endswith("; 0 warnings")
    assert "check-db: OK" in result.stdout
    for table in ("latency_metrics", "chunk_retrieval_stats", "follow_up_patterns_daily"):
        assert f"\n{table} (table, " in "\n" + result.stdout
    assert "embedding, llm, post, search, total" in result.stdout and "(today)" in result.stdout
    assert "300 chunks" in result.stdout


def test_a_crafted_database_shows_each_problem_and_fails(dsn):
    # Seeded and checked at NOON, the day's rows changed by that date: with the wall clock, a midnight between
    # the seed and the check added findings of its own.
    seed(dsn, scale=DemoScale(days=12, chunks=300), anomalies=False, at=NOON)
    seeded = dsn
    execute(seeded, """
        DELETE FROM latency_metrics WHERE component = 'total';
        UPDATE latency_metrics SET p90_time_ms = p50_time_ms / 2 WHERE component = 'search';
        UPDATE chunk_retrieval_stats SET avg_relevance = avg_relevance * 100;
        ALTER TABLE feedback_daily ALTER COLUMN updated_at DROP NOT NULL;
        UPDATE feedback_daily SET updated_at = NULL WHERE date < %(today)s - 3;
    """, {"today": NOON.date()})

    def etl_corrects_a_running_total(seconds: float) -> None:  # between the two reads
        execute(seeded, "UPDATE token_usage_daily SET request_count = request_count - 7 "
                        "WHERE date = %s AND model_name = 'gpt-4o'", (NOON.date(),))

    reports = check(Config(dsn=seeded), None, pause=2.0, clock=NOON.timestamp, wait=etl_corrects_a_running_total)
    print(render(reports))
    assert exit_code(reports) == 1
    latency = findings(reports, "latency_metrics", ERROR)
    assert any("no component='total'" in text for text in latency), latency
    assert any("p50 <= p90 <= p95 <= p99 broken, e.g. search" in text for text in latency), latency
    chunks = findings(reports, "chunk_retrieval_stats", ERROR)
    assert any("a 0..100 scale?" in text for text in chunks), chunks
    assert any("rejected as out_of_range" in text for text in chunks), chunks
    feedback = findings(reports, "feedback_daily", ERROR)
    assert any("have a NULL updated_at" in text for text in feedback), feedback
    usage = findings(reports, "token_usage_daily", ERROR)
    assert any("request_count of (" in text and "gpt-4o) went from" in text and "went down" in text
               for text in usage), usage
    # Nothing else is wrong with the tables left alone.
    for table in ("citation_daily", "feedback_tags_daily", "follow_up_patterns_daily"):
        assert findings(reports, table, ERROR) == findings(reports, table, WARNING) == []


def test_a_foreign_schema_is_named_column_by_column(fresh_db):
    execute(fresh_db, """
        CREATE TABLE latency_metrics (date timestamptz, component uuid, request_count text, updated_at timestamp);
        CREATE TABLE citation_daily (date timestamptz, responses_total bigint, zero_citations bigint,
            one_citation bigint, two_citations bigint, three_plus_citations bigint, updated_at timestamptz);
        INSERT INTO citation_daily VALUES (now() - interval '1 day', 10, 1, 2, 3, 4, now());
    """)
    result = run("check-db", "--dsn", fresh_db, "--pause", "0")
    print(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout
    assert "latency_metrics (table, 4 columns)" in text
    assert "ERROR: no column error_count, avg_time_ms" in text
    assert "ERROR: component is uuid, the contract says text" in text
    assert "ERROR: request_count is text, the contract says bigint: every row is rejected as wrong_type" in text
    assert "WARNING: updated_at is timestamp without time zone" in text
    assert "ERROR: does not exist: its panels are empty" in text  # the five other tables
    assert text.count("does not exist") == 5
    # A day as a timestamp: the refresh fails the table, naming the column and the cast.
    assert "ERROR: date is timestamp with time zone, the contract says date" in text
    assert "ERROR: reading it fails: column date is timestamp with time zone, not date" in text
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line(tmp_path):
    result = run("check-db", "--dsn", f"host={tmp_path} port=1 dbname=x user=x connect_timeout=2")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("check-db: ") and "Traceback" not in result.stderr


def test_a_table_too_slow_to_count_is_a_finding_not_a_crash(seeded, tmp_path):
    """A scan of every row may outlast statement_timeout on a huge table; the rest is still checked."""
    execute(seeded, """
        ALTER TABLE chunk_retrieval_stats RENAME TO chunk_base;
        CREATE VIEW chunk_retrieval_stats AS SELECT * FROM chunk_base WHERE pg_sleep(0.01) IS NOT NULL;
    """)  # 300 rows: 3 s a scan
    config = tmp_path / "config.yml"
    config.write_text(f"database:\n  dsn: '{seeded}'\n  statement_timeout: 1s\n")
    result = run("check-db", "--config", str(config), "--pause", "0")
    print(result.stdout)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    block = result.stdout.split("chunk_retrieval_stats (view, 8 columns)\n")[1].split("\nfeedback_daily")[0]
    assert "WARNING: its rows could not be counted (canceling statement due to statement timeout)" in block
    assert "ERROR: reading it fails: canceling statement due to statement timeout" in block
    assert "check-db: 1 error (" in result.stdout  # the other tables were checked, and passed


@pytest.fixture
def limited_role(pg_server):
    """A login role that may hold one connection, as a role beside a running exporter may have one left.
    Ask for it before the database, so that the database (and the role's grants in it) goes first."""
    name = f"one_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(pg_server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE ROLE "{name}" LOGIN CONNECTION LIMIT 1')
    yield name
    with admin.cursor() as cur:
        cur.execute(f'DROP ROLE "{name}"')
    admin.close()


def test_one_connection_at_a_time_and_a_database_lost_between_the_reads(limited_role, seeded):
    execute(seeded, f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{limited_role}"')
    as_role = seeded.replace("postgres:@", f"{limited_role}@", 1)
    result = run("check-db", "--dsn", as_role, "--pause", "0")
    assert result.returncode == 0, result.stdout + result.stderr

    def the_database_goes_away(seconds: float) -> None:
        execute(seeded, f'ALTER ROLE "{limited_role}" NOLOGIN')
        execute(seeded, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (limited_role,))

    with pytest.raises(DatabaseUnavailable):
        check(Config(dsn=as_role), None, pause=0, wait=the_database_goes_away)


def test_a_negative_pause_is_a_usage_error(tmp_path):
    result = run("check-db", "--dsn", f"host={tmp_path} dbname=x", "--pause", "-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["check-db: --pause -1 must be 0 or more seconds"]


@pytest.mark.unit
def test_the_age_of_a_write_says_when_a_clock_is_off():
    assert written_ago(600) == "10 min ago"
    assert written_ago(-5) == "0 min ago"  # seconds ahead: the clocks' usual disagreement, not "-0 min ago"
    assert written_ago(-600) == "10 min in the future (a clock is off: see RagAnalyticsDatabaseClockSkew)"


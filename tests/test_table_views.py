"""docs/tables.md's adapter, run as written: a differently named schema, the contract as views over it, and
the exporter reading through the views (with a role that may read nothing else) serves the same numbers as
from the contract's own tables."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from datetime import datetime

import psycopg2
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, execute, free_port, one_utc_day, query
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed
from stack import wait_for

SECTION = "## Adapting an existing schema with views"
# The demo data copied into the pipeline's tables, in the pipeline's names, units and shapes.
FILL_PIPELINE = """
INSERT INTO pipeline.stage_timings
    SELECT date, CASE component WHEN 'total' THEN 'end_to_end' ELSE component END, request_count, error_count,
           avg_time_ms * 1000, p50_time_ms * 1000, p90_time_ms * 1000, p95_time_ms * 1000, p99_time_ms * 1000,
           updated_at FROM public.latency_metrics;
INSERT INTO pipeline.llm_usage
    SELECT date, model_name, request_count, prompt_tokens, completion_tokens, estimated_cost_usd * 100, updated_at
    FROM public.token_usage_daily;
INSERT INTO pipeline.answer_citations
    SELECT date, cited, answers, updated_at FROM public.citation_daily,
        LATERAL (VALUES (0, zero_citations), (1, one_citation), (2, two_citations)) AS counts (cited, answers)
    -- 3+ split over 3 and 4 citations, as a long format holds it
    UNION ALL SELECT date, 3, three_plus_citations / 2, updated_at FROM public.citation_daily
    UNION ALL SELECT date, 4, three_plus_citations - three_plus_citations / 2, updated_at FROM public.citation_daily;
INSERT INTO pipeline.chunks
    SELECT chunk_id::uuid, document_id::uuid, chunk_size_chars, retrieval_count, citation_count, avg_relevance * 100,
           last_retrieved_at, updated_at FROM public.chunk_retrieval_stats;
INSERT INTO pipeline.feedback
    SELECT date, NULL, positive_count, negative_count, updated_at FROM public.feedback_daily
    UNION ALL SELECT date, tag, positive_count, negative_count, updated_at FROM public.feedback_tags_daily;
INSERT INTO pipeline.followups
    SELECT date, pattern, frequency, avg_response_time_ms, feedback_count, positive_feedback_count, updated_at
    FROM public.follow_up_patterns_daily;
"""
# The pipeline's chunks have UUIDs: the contract's own table gets the same ones, so that both serve one label set.
# Seconds from the seed to the last scrape of the walkthrough's test: measured up to 5 s at load 1 to 2.5; a
# minute leaves room for a loaded machine.
VIEWS_SECONDS = 60
UUID_CHUNKS = """
UPDATE public.chunk_retrieval_stats SET chunk_id = md5(chunk_id)::uuid::text, document_id = md5(document_id)::uuid::text
"""
# Timings of the refresh itself differ between any two refreshes.
VARYING = re.compile(r"rag_exporter_(refresh_duration|last_refresh|refreshes|http_|database_clock)|process_|python_"
                     r"|rag_\w+_created$")


def documented_sql() -> list[str]:
    """The SQL blocks of docs/tables.md's adapter section, in order."""
    text = (REPO / "docs" / "tables.md").read_text()
    section = text[text.index(SECTION):]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)


def served(dsn: str, at: datetime) -> dict[tuple[str, tuple], float]:
    """Every sample one refresh of an exporter on this DSN serves at `at`, but the refresh's own timings."""
    database = Database(dsn, password=None, application_name="test-views", connect_timeout=2, statement_timeout=10,
                        lock_timeout=1)
    refresher = Refresher(database, Config(dsn=dsn, default_daily_cost_budget_usd=100.0), clock=at.timestamp)
    refresher.refresh()
    text = generate_latest(build_registry(lambda: refresher.snapshot, clock=at.timestamp)).decode()
    database.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if not VARYING.match(s.name)}


@pytest.fixture
def role(pg_server):
    """A login role of its own (roles are cluster-wide), dropped afterwards. Ask for it before the database,
    so that the database (and the role's grants in it) goes first."""
    name = f"views_{uuid.uuid4().hex[:8]}"
    execute(pg_server.get_uri(), f'CREATE ROLE "{name}" LOGIN')
    yield name
    admin = psycopg2.connect(pg_server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP ROLE "{name}"')
    admin.close()


def test_the_exporter_reads_the_contract_through_views_and_serves_the_same_numbers(role, fresh_db):
    pipeline, views, grants = documented_sql()
    assert "CREATE SCHEMA pipeline" in pipeline and views.count("CREATE VIEW") == 7 and "search_path" in grants
    init_db(fresh_db)
    # check-db and serve run as processes on the wall clock: the rows are dated from one reading of it, far
    # enough from 00:00 UTC for the test to end on the same day, and the in-process refreshes run at it.
    at = one_utc_day(VIEWS_SECONDS)
    seed(fresh_db, scale=DemoScale(days=40, chunks=500), seed_value=5, at=at)
    execute(fresh_db, UUID_CHUNKS)
    execute(fresh_db, pipeline)
    execute(fresh_db, FILL_PIPELINE)
    execute(fresh_db, views)
    execute(fresh_db, grants.replace("rag_exporter", f'"{role}"'))
    through_views = fresh_db.replace("postgres:@", f"{role}@", 1)
    assert through_views != fresh_db
    # The role reads the views and nothing else: not the pipeline's tables, not the public ones.
    for table in ("pipeline.stage_timings", "public.latency_metrics"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query(through_views, f"SELECT 1 FROM {table} LIMIT 1")

    expected, got = served(fresh_db, at), served(through_views, at)
    assert expected[("rag_exporter_up", ())] == 1.0 and got[("rag_exporter_up", ())] == 1.0
    assert sum(1 for name, _ in expected if name.startswith("rag_") and not name.startswith("rag_exporter_")) > 100
    assert got.keys() == expected.keys(), (sorted(got.keys() - expected.keys())[:5],
                                           sorted(expected.keys() - got.keys())[:5])
    # Seconds back to milliseconds and cents back to dollars round to the last bit or two.
    different = {key: (expected[key], got[key]) for key in expected
                 if not math.isclose(expected[key], got[key], rel_tol=1e-12, abs_tol=1e-12)
                 and not (math.isnan(expected[key]) and math.isnan(got[key]))}
    assert not different, sorted(different.items())[:10]

    # The walkthrough's next steps, as a user runs them: check-db through the views passes, then serve serves.
    check = run_cli("check-db", "--dsn", through_views, "--pause", "1")
    print(check.stdout)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "latency_metrics (view, 10 columns)" in check.stdout and "total" in check.stdout
    assert "ERROR" not in check.stdout and "WARNING" not in check.stdout
    body = serve_once(through_views)
    assert "rag_exporter_up 1.0" in body and 'rag_component_requests{component="total"}' in body
    assert 'rag_chunk_relevance_chunks{relevance="0.9-1.0"}' in body


def test_check_db_names_each_mistake_of_a_view_left_half_done(role, fresh_db):
    """The walkthrough's views without the total mapping, the relevance scale and one percentile's unit."""
    pipeline, views, grants = documented_sql()
    init_db(fresh_db)
    seed(fresh_db, scale=DemoScale(days=10, chunks=200), seed_value=5)
    execute(fresh_db, UUID_CHUNKS)
    execute(fresh_db, pipeline)
    execute(fresh_db, FILL_PIPELINE)
    half_done = (views.replace("CASE stage WHEN 'end_to_end' THEN 'total' ELSE stage END", "stage")
                 .replace("relevance_pct / 100", "relevance_pct").replace("p99_us / 1000", "p99_us / 1000000"))
    assert half_done.count("CASE") == 0 and "relevance_pct AS" in half_done
    execute(fresh_db, half_done)
    execute(fresh_db, grants.replace("rag_exporter", f'"{role}"'))
    check = run_cli("check-db", "--dsn", fresh_db.replace("postgres:@", f"{role}@", 1), "--pause", "0")
    print(check.stdout)
    assert check.returncode == 1, check.stdout + check.stderr
    for said in ("no component='total'", "avg_relevance goes up to 100", "p50 <= p90 <= p95 <= p99 broken"):
        assert said in check.stdout, said


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_EXPORTER_", "PG"))}
    return subprocess.run([sys.executable, "-m", "rag_analytics_exporter.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def serve_once(dsn: str) -> str:
    """The /metrics body of `serve` on this DSN, once its first refresh has read every table."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_EXPORTER_", "PG"))}
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "serve", "--dsn", dsn,
                                "--web.listen-address", f"127.0.0.1:{port}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def scraped() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                body = response.read().decode()
        except OSError:
            return None
        return body if "rag_exporter_up 1.0" in body else None

    try:
        return wait_for("serve's first refresh", scraped, 60)
    finally:
        process.terminate()
        process.wait(timeout=30)

# Issue 29 item 9. Before: "TypeError: can't compare datetime.datetime to datetime.date", a
# traceback, and neither the column nor what to do named.
def test_a_view_whose_date_is_a_timestamp_fails_its_table_naming_the_column(dsn, caplog):
    seed(dsn, scale=DemoScale(days=10, chunks=100))
    execute(dsn, "ALTER TABLE citation_daily RENAME TO citation_data; CREATE VIEW citation_daily AS SELECT "
                 "date::timestamp AS date, responses_total, zero_citations, one_citation, two_citations, "
                 "three_plus_citations, updated_at FROM citation_data")
    database = Database(dsn, password=None, application_name="test-views", connect_timeout=2, statement_timeout=10,
                        lock_timeout=1)
    refresher = Refresher(database, Config(dsn=dsn))
    refresher.refresh()
    database.close()
    up = refresher.snapshot.health.table_up
    assert up["citation_daily"] is False and up["latency_metrics"] is True
    [failure] = [r for r in caplog.records if "citation_daily" in r.getMessage()]
    assert "column date is timestamp without time zone, not date" in failure.getMessage()
    assert failure.exc_info is None, "a reason, not a traceback"

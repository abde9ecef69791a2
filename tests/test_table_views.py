"""docs/tables.md's adapter, run as written: a differently named schema, the contract as views over it, and
the exporter reading through the views (with a role that may read nothing else) serves the same numbers as
from the contract's own tables."""

from __future__ import annotations

import math
import re
import uuid

import psycopg2
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO, execute, query
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed

SECTION = "## Adapting an existing schema with views"
# The demo data copied into the pipeline's tables, in the pipeline's names and units.
FILL_PIPELINE = """
INSERT INTO pipeline.stage_timings
    SELECT date, component, request_count, error_count, avg_time_ms / 1000, p50_time_ms / 1000, p90_time_ms / 1000,
           p95_time_ms / 1000, p99_time_ms / 1000, updated_at FROM public.latency_metrics;
INSERT INTO pipeline.llm_usage
    SELECT date, model_name, request_count, prompt_tokens, completion_tokens, estimated_cost_usd * 100, updated_at
    FROM public.token_usage_daily;
INSERT INTO pipeline.answer_citations
    SELECT date, responses_total, zero_citations, one_citation, two_citations, three_plus_citations, updated_at
    FROM public.citation_daily;
INSERT INTO pipeline.chunks
    SELECT chunk_id, document_id, chunk_size_chars, retrieval_count, citation_count, avg_relevance,
           last_retrieved_at, updated_at FROM public.chunk_retrieval_stats;
INSERT INTO pipeline.feedback
    SELECT date, NULL, positive_count, negative_count, updated_at FROM public.feedback_daily
    UNION ALL SELECT date, tag, positive_count, negative_count, updated_at FROM public.feedback_tags_daily;
INSERT INTO pipeline.followups
    SELECT date, pattern, frequency, avg_response_time_ms, feedback_count, positive_feedback_count, updated_at
    FROM public.follow_up_patterns_daily;
"""
# Timings of the refresh itself differ between any two refreshes.
VARYING = re.compile(r"rag_exporter_(refresh_duration|last_refresh|refreshes|http_)|process_|python_")


def documented_sql() -> list[str]:
    """The SQL blocks of docs/tables.md's adapter section, in order."""
    text = (REPO / "docs" / "tables.md").read_text()
    section = text[text.index(SECTION):]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)


def served(dsn: str) -> dict[tuple[str, tuple], float]:
    """Every sample one refresh of an exporter on this DSN serves, but the refresh's own timings."""
    database = Database(dsn, password=None, application_name="test-views", connect_timeout=2, statement_timeout=10,
                        lock_timeout=1)
    refresher = Refresher(database, Config(dsn=dsn, default_daily_cost_budget_usd=100.0))
    refresher.refresh()
    text = generate_latest(build_registry(lambda: refresher.snapshot)).decode()
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
    seed(fresh_db, scale=DemoScale(days=40, chunks=500), seed_value=5)
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

    expected, got = served(fresh_db), served(through_views)
    assert expected[("rag_exporter_up", ())] == 1.0 and got[("rag_exporter_up", ())] == 1.0
    assert sum(1 for name, _ in expected if name.startswith("rag_") and not name.startswith("rag_exporter_")) > 100
    assert got.keys() == expected.keys(), (sorted(got.keys() - expected.keys())[:5],
                                           sorted(expected.keys() - got.keys())[:5])
    # Seconds back to milliseconds and cents back to dollars round to the last bit or two.
    different = {key: (expected[key], got[key]) for key in expected
                 if not math.isclose(expected[key], got[key], rel_tol=1e-12, abs_tol=1e-12)
                 and not (math.isnan(expected[key]) and math.isnan(got[key]))}
    assert not different, sorted(different.items())[:10]


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

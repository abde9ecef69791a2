"""Snapshot builders without a server: capping, merging, and one golden exposition."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest

from rag_analytics_exporter.builders import (
    DAILY_BUILDERS,
    build_chunks,
    build_citations,
    build_feedback,
    build_latency,
)
from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import ChunkRead, TableRead
from rag_analytics_exporter.series import OTHER, rank_labels
from rag_analytics_exporter.snapshot import Health, Snapshot, frozen_mapping

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "exposition.txt"
TODAY = date(2026, 3, 31)
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=timezone.utc).timestamp()
UPDATED = datetime(2026, 3, 31, 11, 58, tzinfo=timezone.utc)
LATENCY_COLUMNS = ("date", "component", "request_count", "error_count", "avg_time_ms", "p50_time_ms",
                   "p90_time_ms", "p95_time_ms", "p99_time_ms")


def table(name: str, columns: tuple[str, ...], rows: list[tuple]) -> TableRead:
    newest = max((r[0] for r in rows), default=None)
    return TableRead(name, columns, tuple(rows), newest, UPDATED)


def test_rank_labels_keeps_top_n_and_breaks_ties_by_name():
    assert rank_labels({"a": 1, "b": 5, "c": 5, "d": 0}, 2) == {"b": "b", "c": "c", "a": OTHER, "d": OTHER}
    assert rank_labels({"a": 1}, 5) == {"a": "a"}


def test_merged_components_keep_a_weighted_mean_and_drop_percentiles():
    rows = [(TODAY, "llm", 100, 1, 1000.0, 900.0, 1, 1, 2000.0),
            (TODAY, "rerank", 10, 0, 200.0, 150.0, 1, 1, 300.0),
            (TODAY, "cache", 30, 0, 100.0, 90.0, 1, 1, 120.0)]
    section = build_latency(table("latency_metrics", LATENCY_COLUMNS, rows), NOW, TODAY, Config(max_components=1))
    by_name = {c.component: c for c in section.data.components}
    assert set(by_name) == {"llm", OTHER}
    other = by_name[OTHER]
    assert other.requests == 40
    assert other.latency_seconds == {"mean": (10 * 0.2 + 30 * 0.1) / 40}
    assert by_name["llm"].latency_seconds["p99"] == 2.0


def test_a_day_without_traffic_has_requests_but_no_latency():
    rows = [(TODAY, "llm", 0, 0, None, None, None, None, None)]
    section = build_latency(table("latency_metrics", LATENCY_COLUMNS, rows), NOW, TODAY, Config())
    (llm,) = section.data.components
    assert llm.requests == 0 and dict(llm.latency_seconds) == {}


def golden_snapshot() -> Snapshot:
    config = Config(max_models=2, max_tags=2, max_patterns=2, model_daily_cost_budget_usd={"gpt-4o": 50.0})
    yesterday = TODAY - timedelta(days=1)
    latency = [(yesterday - timedelta(days=i), "llm", 100, 1, 1000.0 + 10 * (i % 3), None, None, None, None)
               for i in range(1, 8)]
    latency += [(yesterday, "llm", 100, 2, 1400.0, 1200.0, 1800.0, 2100.0, 3000.0),
                (TODAY, "llm", 40, 1, 1100.0, 1000.0, 1500.0, 1700.0, 2500.0),
                (TODAY, "search", 40, 0, 80.0, 70.0, 110.0, 130.0, 180.0)]
    reads = {
        "latency_metrics": table("latency_metrics", LATENCY_COLUMNS, latency),
        "token_usage_daily": table(
            "token_usage_daily",
            ("date", "model_name", "request_count", "prompt_tokens", "completion_tokens", "total_tokens",
             "estimated_cost_usd"),
            [(TODAY, "gpt-4o", 10, 1000, 200, 1200, 0.5), (TODAY, "mini", 30, 3000, 600, 3600, 0.1),
             (TODAY, "small-a", 1, 10, 2, 12, 0.001), (TODAY, "small-b", 1, 20, 4, 24, 0.002)]),
        "citation_daily": table("citation_daily", ("date", "responses_total", "zero_citations", "one_citation",
                                                   "two_citations", "three_plus_citations"),
                                [(yesterday, 50, 5, 10, 15, 20), (TODAY, 100, 10, 20, 30, 40)]),
        "feedback_daily": table("feedback_daily", ("date", "positive_count", "negative_count"),
                                [(yesterday, 4, 1), (TODAY, 9, 3)]),
        "feedback_tags_daily": table("feedback_tags_daily", ("date", "tag", "positive_count", "negative_count"),
                                     [(TODAY, "accurate", 5, 0), (TODAY, "too_long", 0, 2),
                                      (TODAY, 'quote"tag', 1, 1), (TODAY, None, 1, 1)]),
        "follow_up_patterns_daily": table(
            "follow_up_patterns_daily",
            ("date", "pattern", "frequency", "avg_response_time_ms", "feedback_count", "positive_feedback_count"),
            [(TODAY, "clarification", 10, 2000.0, 4, 3), (TODAY, "rephrase", 5, None, 0, 0)]),
    }
    sections = {name: DAILY_BUILDERS[name](read, NOW, TODAY, config) for name, read in reads.items()}
    sections["chunk_retrieval_stats"] = build_chunks(
        ChunkRead(buckets=((-2, 1, 5.0, 1.0), (-1, 3, 0.0, 0.0), (7, 10, 100.0, 30.0), (9, 2, 50.0, 40.0)),
                  top=(("c1", "d1", 40, 30, 0.95), ("c2", "d1", 25, 5, 0.71)), updated_at=UPDATED),
        NOW)
    health = Health(up=True, last_attempt=NOW, last_success=NOW, duration_seconds=0.25, refreshes=3,
                    errors=frozen_mapping({"connection": 1, "query": 0}), skipped=0,
                    table_up=frozen_mapping({name: True for name in sections}))
    return Snapshot(sections=frozen_mapping(sections), health=health, refresh_interval=60.0, max_data_age=300.0)


def test_golden_exposition():
    snapshot = golden_snapshot()
    body = generate_latest(build_registry(lambda: snapshot, clock=lambda: NOW)).decode()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(body)
    assert body == GOLDEN.read_text(), "exposition changed; if on purpose, rerun with UPDATE_GOLDEN=1 and review"


def test_the_quality_slo_periods_sum_their_last_days_and_the_day_families_stay_the_newest_days():
    """citation_daily and feedback_daily are read over the window (oldest row first) for the quality SLOs' exact
    budget: the day's families still show the newest day, and the period is its last days with today."""
    citations = [(TODAY - timedelta(days=d), 100 + d, d, 100, 0, 0) for d in range(40)]
    feedback = [(TODAY - timedelta(days=d), 50, d) for d in range(40)]
    config = Config(slo_period_days=7)
    cited = build_citations(table("citation_daily", ("date", "responses_total", "zero_citations", "one_citation",
                                                     "two_citations", "three_plus_citations"),
                                  sorted(citations)), NOW, TODAY, config).data
    rated = build_feedback(table("feedback_daily", ("date", "positive_count", "negative_count"), sorted(feedback)),
                           NOW, TODAY, config).data
    assert (cited.responses, cited.by_citations["0"]) == (100, 0)
    assert cited.period == (sum(100 + d for d in range(7)), sum(range(7))) and cited.period_days == 7
    assert (rated.positive, rated.negative) == (50, 0)
    assert rated.period == (50 * 7, sum(range(7)))


def test_the_slo_period_sums_its_last_days_with_today_and_no_day_before():
    # 40 days of llm: day d (0 = today) has 1000 + d requests and d errors.
    rows = [(TODAY - timedelta(days=d), "llm", 1000 + d, d, 100.0, 1, 1, 1, 1) for d in range(40)]
    section = build_latency(table("latency_metrics", LATENCY_COLUMNS, rows), NOW, TODAY, Config(slo_period_days=7))
    assert section.data.period == {"llm": (sum(1000 + d for d in range(7)), sum(range(7)))}
    assert section.data.period_days == 7
    whole = build_latency(table("latency_metrics", LATENCY_COLUMNS, rows), NOW, TODAY, Config())
    assert whole.data.period["llm"] == (sum(1000 + d for d in range(30)), sum(range(30)))


def _families(snapshot: Snapshot) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    body = generate_latest(build_registry(lambda: snapshot, clock=lambda: NOW)).decode()
    return {family.name: family for family in text_string_to_metric_families(body)}


def test_every_known_rejection_reason_is_served_at_zero_for_every_table():
    from rag_analytics_exporter.validate import REASONS

    samples = {(s.labels["table"], s.labels["reason"]): s.value
               for s in _families(golden_snapshot())["rag_exporter_rows_rejected"].samples}
    assert {reason for _, reason in samples} == set(REASONS)
    assert {table for table, _ in samples} == set(golden_snapshot().sections)
    assert samples[("feedback_tags_daily", "null_key")] == 1
    assert samples[("feedback_tags_daily", "negative_value")] == 0
    assert samples[("latency_metrics", "future_date")] == 0


def test_a_newest_day_without_the_total_component_is_a_data_problem():
    snapshot = golden_snapshot()  # its newest day has llm and search, no total
    (sample,) = _families(snapshot)["rag_exporter_data_problem"].samples
    assert sample.labels == {"table": "latency_metrics", "reason": "no_total_component"} and sample.value == 1
    rows = [(TODAY, "total", 40, 1, 1200.0, 1100.0, 1600.0, 1800.0, 2600.0),
            (TODAY, "llm", 40, 1, 1100.0, 1000.0, 1500.0, 1700.0, 2500.0)]
    latency = build_latency(table("latency_metrics", LATENCY_COLUMNS, rows), NOW, TODAY, Config())
    with_total = Snapshot(sections=frozen_mapping(dict(snapshot.sections) | {"latency_metrics": latency}),
                          health=snapshot.health, refresh_interval=60.0, max_data_age=300.0)
    (sample,) = _families(with_total)["rag_exporter_data_problem"].samples
    assert sample.value == 0


def test_the_chunk_families_say_their_own_table_and_interval():
    """Issue 31 item 5: they said 'From the daily aggregate tables, read every 60s'."""
    from dataclasses import replace

    families = _families(replace(golden_snapshot(), chunk_refresh_interval=900.0))
    chunk_families = [name for name in families if name.startswith(("rag_chunk", "rag_top_chunk"))]
    assert {"rag_chunks", "rag_top_chunk_retrievals", "rag_chunk_relevance_chunks"} <= set(chunk_families)
    for name in chunk_families:
        said = families[name].documentation
        assert "From chunk_retrieval_stats (one cumulative row per chunk), read every 900s" in said, name
        assert "daily" not in said, name
    assert "read every 60s" in families["rag_responses"].documentation

"""RAG Overview: every selected deployment side by side, one value each per stat."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db

from ..promql import by_deployment
from .common import hourly, legend, m, new_dashboard, q, red_above, series, single, thresholds, v


def build() -> Any:
    d = new_dashboard("overview", "RAG Overview",
                      "The RAG service at a glance: today's volume, errors, latency, cost, feedback, alerts and "
                      "data freshness, one value per selected deployment. Links at the top lead to the other RAG "
                      "dashboards.")
    total, firing, ours, uncited = 'component="total"', 'alertstate="firing"', 'alertname=~"Rag.*"', 'citations="0"'
    d = d.with_row(db.Row("Today (UTC)"))
    for panel in (
        single("Requests today", "short", q(v("rag_component_requests", total), legend(), instant=True),
               "End-to-end requests so far today (latency_metrics, component total)."),
        single("Error ratio today", "percentunit", q(v("rag_component_error_ratio", total), legend(), instant=True),
               "Failed requests / requests, end to end, today.", thresholds=red_above(0.05)),
        single("End-to-end p95", "s", q(v("rag_component_latency_seconds", total, 'statistic="p95"'), legend(),
                                        instant=True), "95th percentile of the whole request today."),
        single("Cost today", "currencyUSD", q(by_deployment("sum", v("rag_model_cost_usd")), legend(), instant=True),
               "Estimated LLM cost so far today, all models."),
        single("Negative feedback", "percentunit", q(v("rag_feedback_negative_ratio"), legend(), instant=True),
               "Share of today's feedback that is negative.", thresholds=red_above(0.2)),
        # 0 for a deployment with nothing firing, rather than no value at all.
        single("Firing alerts", "short",
               q(f"{by_deployment('count', m('ALERTS', firing, ours))} or "
                 f"{by_deployment('group', m('up'))} * 0", legend(), instant=True),
               "RAG alerts firing in Prometheus now.", thresholds=thresholds((None, "green"), (1, "red"))),
    ):
        d = d.with_panel(panel)
    d = d.with_row(db.Row("Pipeline health"))
    for panel in (
        single("Data freshness", "s",
               q(f"time() - {by_deployment('max', m('rag_table_updated_timestamp_seconds'))}", legend(), instant=True),
               "Time since the ETL last wrote any aggregate table.",
               thresholds=thresholds((None, "green"), (7200, "red"))),
        single("Exporter up", "bool_yes_no", q(by_deployment("max", m("rag_exporter_up")), legend(), instant=True),
               "1 when at least one exporter replica's last refresh read every table.",
               thresholds=thresholds((None, "red"), (1, "green"))),
        single("Tokens today", "short", q(by_deployment("sum", v("rag_model_tokens")), legend(), instant=True),
               "Prompt + completion, all models."),
        single("Answers citing nothing", "percentunit",
               q(f"{v('rag_citation_responses', uncited)} / ignoring(citations) sum without(citations) "
                 f"({v('rag_citation_responses')})", legend(), instant=True),
               "Share of today's answers with no citation."),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(series("Requests per component (today so far)", "short",
                            q(hourly("rag_component_requests"), legend("{{component}}")), w=12))
    d = d.with_panel(series("End-to-end latency", "s",
                            q(hourly("rag_component_latency_seconds", total), legend("{{statistic}}")), w=12))
    return d

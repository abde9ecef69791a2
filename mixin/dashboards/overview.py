"""RAG Overview: every selected deployment side by side, one value each per stat, each linked to the
dashboard that explains it."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db

from ..promql import by_deployment
from .common import (
    NOW,
    OVER_TIME,
    TODAY,
    T,
    about,
    hourly,
    legend,
    link,
    m,
    new_dashboard,
    q,
    red_above,
    series,
    single,
    thresholds,
    to_component,
    v,
)


def build() -> Any:
    d = new_dashboard("overview", "RAG Overview",
                      "The RAG service at a glance: today's volume, errors, latency, cost, feedback, alerts and "
                      "data freshness, one value per selected deployment. Each stat links to the dashboard that "
                      "explains it; the menu at the top leads to all of them.")
    total, firing, ours, uncited = 'component="total"', 'alertstate="firing"', 'alertname=~"Rag.*"', 'citations="0"'
    latency, usage = link("latency", "Component latency"), link("usage", "Token usage & cost")
    d = d.with_row(db.Row("Today (UTC)"))
    for panel in (
        single("Requests today", "locale", q(v("rag_component_requests", total), legend(), instant=True),
               description=about("End-to-end requests (component total)", "latency_metrics", TODAY),
               links=[latency]),
        single("Error ratio today", "percentunit", q(v("rag_component_error_ratio", total), legend(), instant=True),
               description=about("Failed requests / requests, end to end (component total); red at "
                                 "the error ratio the availability SLO allows (0.5 %)", "latency_metrics", TODAY),
               thresholds=red_above(T["error_ratio"]), links=[latency]),
        single("End-to-end p95 latency today", "s",
               q(v("rag_component_latency_seconds", total, 'statistic="p95"'), legend(), instant=True),
               description=about("95th percentile of the whole request's time (component total)",
                                 "latency_metrics", TODAY),
               links=[link("latency", "Component latency", component="total", statistic="p95")]),
        single("Cost today", "currencyUSD", q(by_deployment("sum", v("rag_model_cost_usd")), legend(), instant=True),
               description=about("Estimated LLM cost, all models", "token_usage_daily", TODAY), links=[usage]),
        single("Negative feedback share today", "percentunit",
               q(v("rag_feedback_negative_ratio"), legend(), instant=True),
               description=about("Negative / all feedback; red at RagNegativeFeedbackHigh's threshold",
                                 "feedback_daily", TODAY),
               thresholds=red_above(0.2), links=[link("feedback", "User feedback")]),
        # 0 for a deployment with nothing firing, rather than no value at all.
        single("Firing RAG alerts", "locale",
               q(f"{by_deployment('count', m('ALERTS', firing, ours))} or "
                 f"{by_deployment('group', m('up'))} * 0", legend(), instant=True),
               description=about("RAG alerts firing (ALERTS)", "Prometheus", NOW),
               thresholds=thresholds((None, "green"), (1, "red")), links=[link("anomalies", "Anomalies and alerts")]),
    ):
        d = d.with_panel(panel)
    d = d.with_row(db.Row("Pipeline health"))
    exporter = link("exporter", "Exporter health")
    for panel in (
        single("Time since the ETL last wrote", "s",
               q(f"time() - {by_deployment('max', m('rag_table_updated_timestamp_seconds'))}", legend(), instant=True),
               description=about("Age of the newest updated_at of any aggregate table; red after 2 hours",
                                 "the exporter (rag_table_updated_timestamp_seconds)", NOW),
               thresholds=thresholds((None, "green"), (7200, "red")), links=[exporter]),
        single("Exporter up", "bool_yes_no", q(by_deployment("max", m("rag_exporter_up")), legend(), instant=True),
               description=about("Yes when at least one exporter replica's last refresh read every table",
                                 "the exporter (rag_exporter_up)", NOW),
               thresholds=thresholds((None, "red"), (1, "green")), links=[exporter]),
        single("Tokens today", "short", q(by_deployment("sum", v("rag_model_tokens")), legend(), instant=True),
               description=about("Prompt + completion tokens, all models", "token_usage_daily", TODAY),
               links=[usage]),
        single("Answers citing nothing today", "percentunit",
               q(f"{v('rag_citation_responses', uncited)} / ignoring(citations) sum without(citations) "
                 f"({v('rag_citation_responses')})", legend(), instant=True),
               description=about("Share of answers with no citation", "citation_daily", TODAY),
               links=[link("retrieval", "Retrieval quality")]),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(series("Requests per component (today so far)", "short",
                            q(hourly("rag_component_requests"), legend("{{component}}")),
                            description=about("Requests per pipeline stage; today's line grows until midnight UTC",
                                              "latency_metrics", OVER_TIME),
                            links=[to_component()], w=12))
    d = d.with_panel(series("End-to-end latency", "s",
                            q(hourly("rag_component_latency_seconds", total), legend("{{statistic}}")),
                            description=about("Mean and percentiles of the whole request's time (component total)",
                                              "latency_metrics", OVER_TIME),
                            links=[link("latency", "Component latency", component="total",
                                        statistic="${__field.labels.statistic}")], w=12))
    return d

"""Dashboards as code: builds grafana/dashboards/*.json with Grafana's grafana-foundation-sdk.

    python grafana/generate.py          # rewrite the committed JSON
    python grafana/generate.py --check  # exit 1 if the committed JSON differs (the test does this too)

Query conventions, so that backfilled history and live data draw alike (docs/backfill.md):
* instantaneous values over time: last_over_time(x[1h]) (history has one sample an hour);
* one bar per day: max_over_time(x[1d]) with a 1-day interval (the per-day gauges restart at
  midnight UTC, so the day's maximum is its total);
* current values (stat, bar gauge, table): the raw series, instant.
* series that exist only live (exporter health, process, recording rules): max/last_over_time(x[$__interval]),
  because Grafana's last point may lie up to one step after now.
Alert thresholds are read from alerting/rules/thresholds.yml, the file the alert rules use, and drawn
as threshold lines across the whole range.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import bargauge, piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
)
from grafana_foundation_sdk.models.piechart import PieChartType
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).parent / "dashboards"
THRESHOLDS_FILE = Path(__file__).parents[1] / "alerting" / "rules" / "thresholds.yml"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="rag-prometheus")
# The dashboard uids: alert annotations (alerting/rules/*.yml, dashboard_url) link to these.
UIDS = {
    "overview": "rag-overview", "latency": "rag-latency", "usage": "rag-usage", "retrieval": "rag-retrieval",
    "feedback": "rag-feedback", "anomalies": "rag-anomalies", "exporter": "rag-exporter",
}
JOB = 'job="rag-analytics-exporter"'


def alert_thresholds() -> dict[str, float]:
    """The alert thresholds, read from the one file that defines them for the alert rules too."""
    rules = yaml.safe_load(THRESHOLDS_FILE.read_text())["groups"][0]["rules"]
    return {rule["labels"]["threshold"]: float(re.fullmatch(r"vector\((.+)\)", rule["expr"]).group(1))
            for rule in rules}


T = alert_thresholds()


def q(expr: str, legend: str | None = None, instant: bool = False, table_format: bool = False) -> Any:
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    return query


def _targets(panel: Any, queries: list[Any]) -> Any:
    for i, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel


def _thresholds(*steps: tuple[float | None, str]) -> Any:
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in steps])


def series(title: str, unit: str, *queries: Any, description: str = "", w: int = 12, h: int = 8,
           bars: bool = False, stacked: bool = False, interval: str | None = None, hidden: str | None = None,
           dashed: str | None = None, lines: list[tuple[float, str]] | None = None) -> Any:
    """A time series panel. hidden: a regex of series shown in the tooltip only; dashed: series drawn dashed;
    lines: alert thresholds drawn as dashed horizontal lines across the whole range (value, colour)."""
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .height(h).span(w).fill_opacity(60 if bars else 10)
             .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING)))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if interval:
        panel = panel.interval(interval)
    if hidden:
        panel = panel.override_by_regexp(hidden, [DynamicConfigValue(
            id_val="custom.hideFrom", value={"viz": True, "legend": True, "tooltip": False})])
    if lines:
        # GraphTresholdsStyleMode (sic) is the SDK's own spelling.
        panel = (panel.thresholds(_thresholds((None, "transparent"), *lines))
                 .thresholds_style(common_builders.GraphThresholdsStyleConfig()
                                   .mode(common.GraphTresholdsStyleMode.DASHED)))
    if dashed:
        panel = panel.override_by_regexp(dashed, [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})])
    return _targets(panel, list(queries))


def single(title: str, unit: str, query: Any, description: str = "", w: int = 4, h: int = 4,
           thresholds: Any = None) -> Any:
    panel = (stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(h).span(w)
             .graph_mode(common.BigValueGraphMode.NONE))
    if thresholds is not None:
        panel = panel.thresholds(thresholds).color_mode(common.BigValueColorMode.BACKGROUND)
    return _targets(panel, [query])


def bars(title: str, unit: str, *queries: Any, description: str = "", w: int = 12, h: int = 8) -> Any:
    panel = (bargauge.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(h)
             .span(w).orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.GRADIENT))
    return _targets(panel, list(queries))


def grid(title: str, *queries: Any, description: str = "", w: int = 24, h: int = 8,
         units: dict[str, str] | None = None) -> Any:
    """A table of instant queries merged on their labels; units by column regex."""
    panel = (table.Panel().title(title).description(description).datasource(DATASOURCE).height(h).span(w)
             .unit("short").with_transformation(DataTransformerConfig(id_val="merge", options={}))
             .with_transformation(DataTransformerConfig(id_val="organize", options=
                 {"excludeByName": {"Time": True, "job": True, "instance": True, "__name__": True}})))
    for column, unit in (units or {}).items():
        panel = panel.override_by_regexp(column, [DynamicConfigValue(id_val="unit", value=unit)])
    return _targets(panel, list(queries))


def query_variable(name: str, label: str, metric: str, multi: bool = True) -> Any:
    return (db.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query(f"label_values({metric}, {name})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(multi).include_all(multi).sort(1))


def new_dashboard(key: str, title: str, description: str) -> Any:
    return (db.Dashboard(title).uid(UIDS[key]).description(description).tags(["rag", "rag-analytics-exporter"])
            .timezone("utc").refresh("1m").time("now-7d", "now").editable()
            .links([db.DashboardLink("RAG dashboards").type(DashboardLinkType.DASHBOARDS).tags(["rag"])
                    .as_dropdown(True).include_vars(False).keep_time(True)]))


def overview() -> Any:
    d = new_dashboard("overview", "RAG Overview",
                      "The RAG service at a glance: today's volume, errors, latency, cost, feedback, alerts and "
                      "data freshness. Links at the top lead to the other RAG dashboards.")
    red_above = lambda v: _thresholds((None, "green"), (v, "red"))  # noqa: E731
    d = d.with_row(db.Row("Today (UTC)"))
    for panel in (
        single("Requests today", "short", q('rag_component_requests{component="total"}', instant=True),
               "End-to-end requests so far today (latency_metrics, component total)."),
        single("Error ratio today", "percentunit", q('rag_component_error_ratio{component="total"}', instant=True),
               "Failed requests / requests, end to end, today.", thresholds=red_above(0.05)),
        single("End-to-end p95", "s", q('rag_component_latency_seconds{component="total",statistic="p95"}',
                                        instant=True), "95th percentile of the whole request today."),
        single("Cost today", "currencyUSD", q("sum(rag_model_cost_usd)", instant=True),
               "Estimated LLM cost so far today, all models."),
        single("Negative feedback", "percentunit", q("rag_feedback_negative_ratio", instant=True),
               "Share of today's feedback that is negative.", thresholds=red_above(0.2)),
        single("Firing alerts", "short",
               q('count(ALERTS{alertstate="firing",alertname=~"Rag.*"}) or vector(0)', instant=True),
               "RAG alerts firing in Prometheus now.", thresholds=_thresholds((None, "green"), (1, "red"))),
    ):
        d = d.with_panel(panel)
    d = d.with_row(db.Row("Pipeline health"))
    for panel in (
        single("Data freshness", "s", q("time() - max(rag_table_updated_timestamp_seconds)", instant=True),
               "Time since the ETL last wrote any aggregate table.",
               thresholds=_thresholds((None, "green"), (7200, "red"))),
        single("Exporter up", "bool_yes_no", q("min(rag_exporter_up)", instant=True),
               "1 when the exporter's last refresh read every table.",
               thresholds=_thresholds((None, "red"), (1, "green"))),
        single("Tokens today", "short", q("sum(rag_model_tokens)", instant=True), "Prompt + completion, all models."),
        single("Answers citing nothing", "percentunit",
               q('rag_citation_responses{citations="0"} / ignoring(citations) sum without(citations) '
                 '(rag_citation_responses)', instant=True), "Share of today's answers with no citation."),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(series("Requests per component (today so far)", "short",
                            q("last_over_time(rag_component_requests[1h])", "{{component}}"), w=12))
    d = d.with_panel(series("End-to-end latency", "s",
                            q('last_over_time(rag_component_latency_seconds{component="total"}[1h])',
                              "{{statistic}}"), w=12))
    return d


def latency() -> Any:
    d = new_dashboard("latency", "RAG Component Latency",
                      "Per-component stage time (mean and percentiles), volume, errors, and each component's "
                      "share of the end-to-end time. Replaces the old page's component performance chart.")
    d = (d.with_variable(query_variable("component", "Component", "rag_component_latency_seconds"))
         .with_variable(db.CustomVariable("statistic").label("Statistic").values("mean,p50,p90,p95,p99")
                        .current(VariableOption(text="p95", value="p95", selected=True))))
    sel = 'component=~"$component"'
    d = d.with_panel(series(
        "Latency ($statistic) per component", "s",
        q(f'last_over_time(rag_component_latency_seconds{{{sel},statistic="$statistic"}}[1h])', "{{component}}"),
        q(f"last_over_time(rag_component_requests{{{sel}}}[1h])", "{{component}} requests"),
        description="Stage time per component; the tooltip also lists each component's requests so far that day.",
        w=24, h=9, hidden=".* requests"))
    d = d.with_panel(bars("Latest latency ($statistic)", "s",
                          q(f'rag_component_latency_seconds{{{sel},statistic="$statistic"}}', "{{component}}",
                            instant=True), description="Today's value per component."))
    d = d.with_panel(
        piechart.Panel().title("Share of end-to-end mean latency").unit("percentunit").datasource(DATASOURCE)
        .description("Each component's mean time divided by the mean of component total, today.")
        .height(8).span(12).pie_type(PieChartType.DONUT)
        .with_target(q('rag_component_latency_seconds{statistic="mean",component!="total"} / ignoring(component) '
                       'group_left rag_component_latency_seconds{statistic="mean",component="total"}',
                       "{{component}}", instant=True).ref_id("A")))
    d = d.with_panel(series(
        "Error ratio", "percentunit",
        q(f"last_over_time(rag_component_error_ratio{{{sel}}}[1h])", "{{component}}"),
        description="Failed / all requests per component that day; the dashed line is RagErrorRateHigh's threshold.",
        lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Requests per day", "short",
                            q(f"max_over_time(rag_component_requests{{{sel}}}[1d])", "{{component}}"),
                            description="Each day's total requests per component.", bars=True, interval="1d"))
    return d


def usage() -> Any:
    d = new_dashboard("usage", "RAG Token Usage & Cost",
                      "Daily prompt and completion tokens, estimated cost, budgets and burn rate, per model or "
                      "for all. Replaces the old page's token usage trends and summary.")
    d = d.with_variable(query_variable("model", "Model", "rag_model_tokens"))
    sel = 'model=~"$model"'
    daily = f"max_over_time(rag_model_tokens{{{sel}}}[1d])"
    over_range = f"sum_over_time(sum({daily})[$__range:1d])"
    d = d.with_row(db.Row("Summary of the complete days in the time range"))
    for panel in (
        single("Total tokens", "short", q(over_range, instant=True)),
        single("Prompt share", "percentunit",
               q(f'sum_over_time(sum(max_over_time(rag_model_tokens{{{sel},token_type="prompt"}}[1d]))'
                 f"[$__range:1d]) / {over_range}", instant=True)),
        single("Completion share", "percentunit",
               q(f'sum_over_time(sum(max_over_time(rag_model_tokens{{{sel},token_type="completion"}}[1d]))'
                 f"[$__range:1d]) / {over_range}", instant=True)),
        single("Total cost", "currencyUSD",
               q(f"sum_over_time(sum(max_over_time(rag_model_cost_usd{{{sel}}}[1d]))[$__range:1d])", instant=True)),
        single("Average daily tokens", "short", q(f"avg_over_time(sum({daily})[$__range:1d])", instant=True)),
        single("Tokens today", "short", q(f"sum(rag_model_tokens{{{sel}}})", instant=True)),
    ):
        d = d.with_panel(panel)
    d = d.with_row(db.Row("Per day"))
    d = d.with_panel(series("Daily tokens: prompt vs completion", "short",
                            q(f"sum by (token_type) ({daily})", "{{token_type}}"),
                            description="Each bar is one UTC day's total.", bars=True, stacked=True, interval="1d"))
    d = d.with_panel(series("Estimated cost per day", "currencyUSD",
                            q(f"sum by (model) (max_over_time(rag_model_cost_usd{{{sel}}}[1d]))", "{{model}}"),
                            bars=True, stacked=True, interval="1d"))
    d = d.with_row(db.Row("Today"))
    d = d.with_panel(series(
        "Cost today against the daily budget", "currencyUSD",
        q(f"last_over_time(rag_model_cost_usd{{{sel}}}[1h])", "{{model}}"),
        q(f"last_over_time(rag_model_cost_budget_usd{{{sel}}}[1h])", "{{model}} budget"),
        description="RagModelCostBudgetExceeded fires when a model's cost passes its budget (exporter setting).",
        dashed=".* budget"))
    d = d.with_panel(series(
        "Token burn rate (last hour, per day)", "short",
        q(f"last_over_time(model:rag_model_tokens:burn_rate1h_per_day{{{sel}}}[$__interval])", "{{model}}"),
        q(f"last_over_time(rag_model_tokens_baseline_mean{{{sel}}}[1h]) * {T['token_runaway_factor']:g}",
          "{{model}} runaway threshold"),
        description="The last hour's tokens scaled to a day (recording rule, live only); RagModelTokenRunaway "
                    "fires above the dashed line, the baseline daily mean times the runaway factor.",
        dashed=".* runaway threshold"))
    d = d.with_panel(grid("Models today",
                          q(f"sum by (model) (rag_model_tokens{{{sel}}})", instant=True, table_format=True),
                          q(f"rag_model_requests{{{sel}}}", instant=True, table_format=True),
                          q(f"rag_model_cost_usd{{{sel}}}", instant=True, table_format=True),
                          units={"Value #C": "currencyUSD"}))
    return d


def retrieval() -> Any:
    d = new_dashboard("retrieval", "RAG Retrieval Quality",
                      "Chunk relevance against citation rate, the 0/1/2/3+ citation distribution and the "
                      "relevance histogram. Replaces the old page's retrieval quality charts.")
    for panel in (
        single("Chunks", "short", q("rag_chunks", instant=True), w=6),
        single("Citations per retrieval", "percentunit", q("rag_chunk_citation_ratio", instant=True), w=6),
        single("Retrievals", "short", q("rag_chunk_retrievals", instant=True), w=6),
        single("Answers today", "short", q("rag_responses", instant=True), w=6),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(bars("Chunk relevance histogram", "short",
                          q("rag_chunk_relevance_chunks", "{{relevance}}", instant=True),
                          description="Chunks per tenth of mean relevance score."))
    d = d.with_panel(bars("Citation rate by relevance", "percentunit",
                          q("rag_chunk_relevance_citation_ratio", "{{relevance}}", instant=True),
                          description="Citations / retrievals of the chunks in each relevance bucket: whether "
                                      "relevant chunks are the ones cited."))
    d = d.with_panel(
        piechart.Panel().title("Answers by citations (today)").unit("short").datasource(DATASOURCE).height(8).span(12)
        .with_target(q("rag_citation_responses", "{{citations}}", instant=True).ref_id("A")))
    d = d.with_panel(series(
        "Share of answers by citations", "percentunit",
        q("last_over_time(rag_citation_responses[1h]) / ignoring(citations) group_left "
          "sum without(citations) (last_over_time(rag_citation_responses[1h]))", "{{citations}}"),
        stacked=True))
    d = d.with_panel(grid("Most retrieved chunks",
                          q("rag_top_chunk_retrievals", instant=True, table_format=True),
                          q("rag_top_chunk_citation_ratio", instant=True, table_format=True),
                          q("rag_top_chunk_relevance_ratio", instant=True, table_format=True),
                          units={"Value #B": "percentunit", "Value #C": "percentunit"}))
    return d


def feedback() -> Any:
    d = new_dashboard("feedback", "RAG User Feedback",
                      "Daily positive and negative feedback, feedback per tag, and follow-up question patterns. "
                      "Replaces the old page's user interaction charts.")
    d = d.with_panel(series("Daily feedback", "short", q("max_over_time(rag_feedback[1d])", "{{sentiment}}"),
                            bars=True, stacked=True, interval="1d"))
    d = d.with_panel(series("Negative share", "percentunit",
                            q("last_over_time(rag_feedback_negative_ratio[1h])", "negative share"),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    d = d.with_panel(bars("Feedback per tag (today)", "short",
                          q("rag_feedback_tag", "{{tag}} {{sentiment}}", instant=True), h=10))
    d = d.with_panel(series("Negative feedback per tag", "short",
                            q('last_over_time(rag_feedback_tag{sentiment="negative"}[1h])', "{{tag}}"), h=10))
    d = d.with_panel(grid("Follow-up patterns (today)",
                          q("rag_followups", instant=True, table_format=True),
                          q("rag_followup_response_time_seconds", instant=True, table_format=True),
                          q("rag_followup_positive_feedback_ratio", instant=True, table_format=True),
                          description="Frequency, mean answer time and positive feedback share per pattern.",
                          units={"Value #B": "s", "Value #C": "percentunit"}))
    return d


def anomalies() -> Any:
    d = new_dashboard("anomalies", "RAG Anomalies",
                      "Yesterday scored against the 30 days before it: z-scores with the warning (±3) and critical "
                      "(±6) lines on both sides, the baseline band, and the alerts they raise.")
    d = (d.with_variable(query_variable("component", "Component", "rag_component_latency_zscore"))
         .with_variable(query_variable("model", "Model", "rag_model_tokens_zscore")))
    # The old design flagged abs(z) > 3: both sides carry the lines.
    zlines = [(-T["zscore_critical"], "red"), (-T["zscore_warning"], "orange"),
              (T["zscore_warning"], "orange"), (T["zscore_critical"], "red")]
    d = d.with_panel(grid(
        "Current anomaly alerts", q('ALERTS{alertname=~"Rag.*Anomaly"}', instant=True, table_format=True),
        description="Pending and firing anomaly alerts, with severity.", h=6))
    d = d.with_panel(series("Latency z-score", "none",
                            q('last_over_time(rag_component_latency_zscore{component=~"$component"}[1h])',
                              "{{component}}"), lines=zlines))
    d = d.with_panel(series("Token usage z-score", "none",
                            q('last_over_time(rag_model_tokens_zscore{model=~"$model"}[1h])', "{{model}}"),
                            lines=zlines))
    band = "rag_component_latency_baseline_{}_seconds{{component=~\"$component\"}}"
    d = d.with_panel(series(
        "Latency against its baseline band", "s",
        q('last_over_time(rag_component_latency_scored_seconds{component=~"$component"}[1h])', "{{component}} scored"),
        q(f"last_over_time({band.format('mean')}[1h])", "{{component}} baseline mean"),
        q(f"last_over_time({band.format('mean')}[1h]) + 3 * last_over_time({band.format('stddev')}[1h])",
          "{{component}} mean + 3 sd"),
        q(f"last_over_time({band.format('mean')}[1h]) - 3 * last_over_time({band.format('stddev')}[1h])",
          "{{component}} mean - 3 sd"),
        description="The scored day's mean latency and the baseline mean ± 3 standard deviations.",
        dashed=".* sd"))
    tband = 'rag_model_tokens_baseline_{}{{model=~"$model"}}'
    d = d.with_panel(series(
        "Tokens against their baseline band", "short",
        q('last_over_time(rag_model_tokens_scored{model=~"$model"}[1h])', "{{model}} scored"),
        q(f"last_over_time({tband.format('mean')}[1h])", "{{model}} baseline mean"),
        q(f"last_over_time({tband.format('mean')}[1h]) + 3 * last_over_time({tband.format('stddev')}[1h])",
          "{{model}} mean + 3 sd"),
        q(f"last_over_time({tband.format('mean')}[1h]) - 3 * last_over_time({tband.format('stddev')}[1h])",
          "{{model}} mean - 3 sd"),
        description="The scored day's total tokens and the baseline mean ± 3 standard deviations.",
        dashed=".* sd"))
    d = d.with_panel(series("Error ratio against its threshold", "percentunit",
                            q('last_over_time(rag_component_error_ratio{component=~"$component"}[1h])',
                              "{{component}}"), lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Negative feedback against its threshold", "percentunit",
                            q("last_over_time(rag_feedback_negative_ratio[1h])", "negative share"),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    return d


def exporter() -> Any:
    d = new_dashboard("exporter", "RAG Exporter Health",
                      "The exporter itself: refreshes, errors, per-table reads and freshness, rejected rows, "
                      "scrape cost and memory.")
    for panel in (
        single("Exporter up", "bool_yes_no", q("min(rag_exporter_up)", instant=True),
               thresholds=_thresholds((None, "red"), (1, "green"))),
        single("Last successful refresh", "s",
               q("time() - max(rag_exporter_last_refresh_success_timestamp_seconds)", instant=True)),
        single("Last refresh took", "s", q("max(rag_exporter_refresh_duration_seconds)", instant=True)),
        single("Skipped refreshes", "short", q("sum(rag_exporter_refresh_skipped_total)", instant=True)),
        single("Scrape duration", "s", q(f"max(scrape_duration_seconds{{{JOB}}})", instant=True)),
        single("Series", "short", q(f"sum(scrape_samples_scraped{{{JOB}}})", instant=True)),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(series("Refresh duration", "s",
                            q("max_over_time(rag_exporter_refresh_duration_seconds[$__interval])", "{{instance}}")))
    d = d.with_panel(series("Refresh errors", "short",
                            q("increase(rag_exporter_refresh_errors_total[$__rate_interval])", "{{kind}}")))
    d = d.with_panel(grid("Tables",
                          q("rag_exporter_table_up", instant=True, table_format=True),
                          q("time() - rag_table_updated_timestamp_seconds", instant=True, table_format=True),
                          q("rag_exporter_rows_read", instant=True, table_format=True),
                          q("rag_exporter_table_data_withheld", instant=True, table_format=True),
                          description="Read status, time since the ETL's last write, rows read, withheld.",
                          units={"Value #B": "s"}))
    d = d.with_panel(series("Rows rejected by the last read", "short",
                            q("sum by (table) (max_over_time(rag_exporter_rows_rejected[$__interval])) or "
                              "sum by (table) (0 * max_over_time(rag_exporter_rows_read[$__interval]))", "{{table}}"),
                            description="Invalid rows skipped, per table (reasons in rag_exporter_rows_rejected)."))
    d = d.with_panel(series("Memory", "bytes",
                            q(f"max_over_time(process_resident_memory_bytes{{{JOB}}}[$__interval])", "{{instance}}")))
    d = d.with_panel(series("CPU", "percentunit",
                            q(f"rate(process_cpu_seconds_total{{{JOB}}}[$__rate_interval])", "{{instance}}")))
    return d


BUILDERS = (overview, latency, usage, retrieval, feedback, anomalies, exporter)


def render() -> dict[str, str]:
    """Every dashboard as canonical JSON text, keyed by file name."""
    files = {}
    for build in BUILDERS:
        model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
        model["id"] = None  # provisioning assigns ids; a fixed id would collide across Grafanas
        model.setdefault("templating", {}).setdefault("list", [])
        for number, panel in enumerate(model["panels"], start=1):
            panel["id"] = number
        files[f"{model['uid']}.json"] = json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is not up to date")
    args = parser.parse_args()
    files = render()
    if args.check:
        stale = [name for name, text in files.items()
                 if not (OUT / name).exists() or (OUT / name).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
        for name in stale + extra:
            print(f"out of date: grafana/dashboards/{name}", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

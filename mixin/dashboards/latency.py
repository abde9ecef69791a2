"""RAG Component Latency: stage time, volume, errors and each component's share of the total."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import piechart
from grafana_foundation_sdk.models.dashboard import VariableOption
from grafana_foundation_sdk.models.piechart import PieChartType

from .common import DATASOURCE, T, bars, daily, hourly, legend, new_dashboard, q, query_variable, series, v


def build() -> Any:
    d = new_dashboard("latency", "RAG Component Latency",
                      "Per-component stage time (mean and percentiles), volume, errors, and each component's "
                      "share of the end-to-end time. Replaces the old page's component performance chart.")
    d = (d.with_variable(query_variable("component", "Component", "rag_component_latency_seconds"))
         .with_variable(db.CustomVariable("statistic").label("Statistic").values("mean,p50,p90,p95,p99")
                        .current(VariableOption(text="p95", value="p95", selected=True))))
    sel, stat = 'component=~"$component"', 'statistic="$statistic"'
    mean, parts, total = 'statistic="mean"', 'component!="total"', 'component="total"'
    d = d.with_panel(series(
        "Latency ($statistic) per component", "s",
        q(hourly("rag_component_latency_seconds", sel, stat), legend("{{component}}")),
        q(hourly("rag_component_requests", sel), legend("{{component}} requests")),
        description="Stage time per component; the tooltip also lists each component's requests so far that day.",
        w=24, h=9, hidden=".* requests"))
    d = d.with_panel(bars("Latest latency ($statistic)", "s",
                          q(v("rag_component_latency_seconds", sel, stat), legend("{{component}}"), instant=True),
                          description="Today's value per component."))
    d = d.with_panel(
        piechart.Panel().title("Share of end-to-end mean latency").unit("percentunit").datasource(DATASOURCE)
        .description("Each component's mean time divided by the mean of component total, today.")
        .height(8).span(12).pie_type(PieChartType.DONUT)
        .with_target(q(f"{v('rag_component_latency_seconds', mean, parts)} / ignoring(component) group_left "
                       f"{v('rag_component_latency_seconds', mean, total)}",
                       legend("{{component}}"), instant=True).ref_id("A")))
    d = d.with_panel(series(
        "Error ratio", "percentunit", q(hourly("rag_component_error_ratio", sel), legend("{{component}}")),
        description="Failed / all requests per component that day; the dashed line is RagErrorRateHigh's threshold.",
        lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Requests per day", "short",
                            q(daily("rag_component_requests", sel), legend("{{component}}")),
                            description="Each day's total requests per component.", bars=True, interval="1d"))
    return d

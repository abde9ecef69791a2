"""RAG Component Latency: stage time, volume, errors and each component's share of the total."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models.dashboard import VariableOption

from .common import (
    OVER_TIME,
    PER_DAY,
    TODAY,
    T,
    about,
    bars,
    daily,
    hourly,
    legend,
    new_dashboard,
    pie,
    q,
    query_variable,
    series,
    to_component,
    v,
)


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
        description=about("Stage time per component at the chosen statistic; the tooltip also lists each "
                          "component's requests so far that day", "latency_metrics", OVER_TIME),
        links=[to_component()], w=24, h=9, hidden=".* requests"))
    d = d.with_panel(bars("Latest latency ($statistic) per component", "s",
                          q(v("rag_component_latency_seconds", sel, stat), legend("{{component}}"), instant=True),
                          description=about("Each component's stage time at the chosen statistic",
                                            "latency_metrics", TODAY),
                          links=[to_component()]))
    d = d.with_panel(pie(
        "Share of end-to-end mean latency", "percentunit",
        q(f"{v('rag_component_latency_seconds', mean, parts)} / ignoring(component) group_left "
          f"{v('rag_component_latency_seconds', mean, total)}", legend("{{component}}"), instant=True),
        description=about("Each component's mean time divided by the mean of component total",
                          "latency_metrics", TODAY),
        links=[to_component()]))
    d = d.with_panel(series(
        "Error ratio per component", "percentunit",
        q(hourly("rag_component_error_ratio", sel), legend("{{component}}")),
        description=about("Failed / all requests per component; the dashed line is the error ratio the "
                          "availability SLO allows (0.5 %)",
                          "latency_metrics", OVER_TIME),
        links=[to_component()], lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Requests per day per component", "short",
                            q(daily("rag_component_requests", sel), legend("{{component}}")),
                            description=about("Requests per component", "latency_metrics", PER_DAY),
                            links=[to_component()], bars=True, interval="1d"))
    return d

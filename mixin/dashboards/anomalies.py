"""RAG Anomalies: yesterday's z-scores with both thresholds, the baseline bands and outliers, and the alerts."""

from __future__ import annotations

from typing import Any

from .common import T, grid, hourly, legend, m, new_dashboard, q, query_variable, series


def band(title: str, what: str, metric: str, unit: str, sel: str, label: str) -> Any:
    """The scored day against the band it is scored in: centre +- the warning z times the spread, in the
    exporter's anomaly.baseline mode; metric has {} for center/spread."""
    center, spread = hourly(metric.format("center"), sel), hourly(metric.format("spread"), sel)
    warning = T["zscore_warning"]
    return series(
        title, unit,
        q(hourly(metric.replace("baseline_{}", "scored"), sel), legend(f"{{{{{label}}}}} scored")),
        q(center, legend(f"{{{{{label}}}}} baseline centre")),
        q(f"{center} + {warning:g} * {spread}", legend(f"{{{{{label}}}}} centre + {warning:g} spreads")),
        q(f"{center} - {warning:g} * {spread}", legend(f"{{{{{label}}}}} centre - {warning:g} spreads")),
        description=f"The scored day's {what} and its baseline band: the centre ± {warning:g} spreads, where the "
                    f"z-score crosses ±{warning:g}, as the exporter computes it in its anomaly.baseline mode "
                    "(plain: mean and standard deviation; weekday and robust: for the scored weekday).",
        dashed=".* spreads")


def outliers(sel_latency: str, sel_tokens: str) -> Any:
    """Baseline days the robust mode left out, per component and model."""
    return series(
        "Baseline days left out as outliers", "short",
        q(hourly("rag_component_latency_baseline_outliers", sel_latency), legend("latency {{component}}")),
        q(hourly("rag_model_tokens_baseline_outliers", sel_tokens), legend("tokens {{model}}")),
        description="Days of the lookback that the robust baseline left out of its centre and spread (an earlier "
                    "anomaly, a holiday). Always 0 in the plain and weekday modes. Next to the band: a score whose "
                    "baseline left out many days is scored against the usual days only.",
        bars=True)


def build() -> Any:
    d = new_dashboard("anomalies", "RAG Anomalies",
                      "Yesterday scored against the 30 days before it: z-scores with the warning (±3) and critical "
                      "(±6) lines on both sides, the baseline band with the days it left out, and the alerts they "
                      "raise.")
    d = (d.with_variable(query_variable("component", "Component", "rag_component_latency_zscore"))
         .with_variable(query_variable("model", "Model", "rag_model_tokens_zscore")))
    component, model = 'component=~"$component"', 'model=~"$model"'
    # The old design flagged abs(z) > 3: both sides carry the lines.
    zlines = [(-T["zscore_critical"], "red"), (-T["zscore_warning"], "orange"),
              (T["zscore_warning"], "orange"), (T["zscore_critical"], "red")]
    d = d.with_panel(grid(
        "Current anomaly alerts", q(m("ALERTS", 'alertname=~"Rag.*Anomaly"'), instant=True, table_format=True),
        description="Pending and firing anomaly alerts, with severity.", h=6))
    d = d.with_panel(series("Latency z-score", "none",
                            q(hourly("rag_component_latency_zscore", component), legend("{{component}}")),
                            lines=zlines))
    d = d.with_panel(series("Token usage z-score", "none",
                            q(hourly("rag_model_tokens_zscore", model), legend("{{model}}")), lines=zlines))
    d = d.with_panel(band("Latency against its baseline band", "mean latency",
                          "rag_component_latency_baseline_{}_seconds", "s", component, "component"))
    d = d.with_panel(band("Tokens against their baseline band", "total tokens", "rag_model_tokens_baseline_{}",
                          "short", model, "model"))
    d = d.with_panel(outliers(component, model))
    d = d.with_panel(series("Error ratio against its threshold", "percentunit",
                            q(hourly("rag_component_error_ratio", component), legend("{{component}}")),
                            lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Negative feedback against its threshold", "percentunit",
                            q(hourly("rag_feedback_negative_ratio"), legend("negative share")),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    return d

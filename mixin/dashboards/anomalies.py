"""RAG Anomalies: yesterday's z-scores with both thresholds, the baseline bands, and the alerts."""

from __future__ import annotations

from typing import Any

from .common import T, grid, hourly, legend, m, new_dashboard, q, query_variable, series


def band(title: str, what: str, metric: str, unit: str, sel: str, label: str) -> Any:
    """The scored day against the baseline mean ± 3 standard deviations; metric has {} for mean/stddev."""
    mean, spread = hourly(metric.format("mean"), sel), hourly(metric.format("stddev"), sel)
    return series(
        title, unit,
        q(hourly(metric.replace("baseline_{}", "scored"), sel), legend(f"{{{{{label}}}}} scored")),
        q(mean, legend(f"{{{{{label}}}}} baseline mean")),
        q(f"{mean} + 3 * {spread}", legend(f"{{{{{label}}}}} mean + 3 sd")),
        q(f"{mean} - 3 * {spread}", legend(f"{{{{{label}}}}} mean - 3 sd")),
        description=f"The scored day's {what} and the baseline mean ± 3 standard deviations.",
        dashed=".* sd")


def build() -> Any:
    d = new_dashboard("anomalies", "RAG Anomalies",
                      "Yesterday scored against the 30 days before it: z-scores with the warning (±3) and critical "
                      "(±6) lines on both sides, the baseline band, and the alerts they raise.")
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
    d = d.with_panel(series("Error ratio against its threshold", "percentunit",
                            q(hourly("rag_component_error_ratio", component), legend("{{component}}")),
                            lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Negative feedback against its threshold", "percentunit",
                            q(hourly("rag_feedback_negative_ratio"), legend("negative share")),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    return d

"""RAG Anomalies: yesterday's z-scores with both thresholds, the baseline bands and outliers, and the alerts."""

from __future__ import annotations

from typing import Any

from .common import (
    NOW,
    OVER_TIME,
    YESTERDAY,
    Column,
    T,
    about,
    grid,
    hourly,
    legend,
    link,
    m,
    new_dashboard,
    q,
    query_variable,
    series,
    to_component,
    to_model,
)


def band(title: str, what: str, metric: str, unit: str, sel: str, label: str, source: str, to: Any) -> Any:
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
        description=about(f"The scored day's {what} and its baseline band: the centre ± {warning:g} spreads "
                          f"(dashed), where the z-score crosses ±{warning:g}, as the exporter computes it in its "
                          "anomaly.baseline mode (plain: mean and standard deviation; weekday and robust: for "
                          "the scored weekday)", f"the exporter's anomaly scores of {source}", YESTERDAY),
        values=True, links=[to], dashed=".* spreads")


def outliers(title: str, metric: str, sel: str, label: str, source: str, to: Any, values: bool) -> Any:
    """Baseline days the robust mode left out, per component or model."""
    return series(
        title, "short", q(hourly(metric, sel), legend(f"{{{{{label}}}}}")),
        description=about("Days of the lookback that the robust baseline left out of its centre and spread (an "
                          "earlier anomaly, a holiday); always 0 in the plain and weekday modes. A score whose "
                          "baseline left out many days is scored against the usual days only",
                          f"the exporter's anomaly scores of {source}", YESTERDAY),
        values=values, links=[to], bars=True)


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
        "Current anomaly alerts",
        Column("Active", m("ALERTS", 'alertname=~"Rag.*Anomaly"'), "none", shown=False),
        description=about("Pending and firing anomaly alerts, with severity (ALERTS)", "Prometheus", NOW),
        keys={"alertname": "Alert", "alertstate": "State", "severity": "Severity", "component": "Component",
              "model": "Model"},
        links={"Component": link("latency", "Open this component's latency", component="${__value.raw}"),
               "Model": link("usage", "Open this model's tokens and cost", model="${__value.raw}")}, h=6))
    d = d.with_panel(series("Latency z-score", "none",
                            q(hourly("rag_component_latency_zscore", component), legend("{{component}}")),
                            description=about("Each component's mean latency as standard deviations from its "
                                              "baseline; warning at ±3, critical at ±6",
                                              "the exporter's anomaly scores of latency_metrics", YESTERDAY),
                            links=[to_component()], lines=zlines))
    d = d.with_panel(series("Token usage z-score", "none",
                            q(hourly("rag_model_tokens_zscore", model), legend("{{model}}")),
                            description=about("Each model's total tokens as standard deviations from its "
                                              "baseline; warning at ±3, critical at ±6",
                                              "the exporter's anomaly scores of token_usage_daily", YESTERDAY),
                            links=[to_model()], lines=zlines))
    d = d.with_panel(band("Latency against its baseline band", "mean latency",
                          "rag_component_latency_baseline_{}_seconds", "s", component, "component",
                          "latency_metrics", to_component()))
    d = d.with_panel(band("Tokens against their baseline band", "total tokens", "rag_model_tokens_baseline_{}",
                          "short", model, "model", "token_usage_daily", to_model()))
    d = d.with_panel(outliers("Latency baseline days left out as outliers", "rag_component_latency_baseline_outliers",
                              component, "component", "latency_metrics", to_component(), values=False))
    d = d.with_panel(outliers("Token baseline days left out as outliers", "rag_model_tokens_baseline_outliers",
                              model, "model", "token_usage_daily", to_model(), values=True))
    d = d.with_panel(series("Error ratio against its threshold", "percentunit",
                            q(hourly("rag_component_error_ratio", component), legend("{{component}}")),
                            description=about("Failed / all requests per component; the dashed line is "
                                              "the error ratio the availability SLO allows (0.5 %)",
                                              "latency_metrics", OVER_TIME),
                            links=[to_component()], lines=[(T["error_ratio"], "red")]))
    d = d.with_panel(series("Negative feedback against its threshold", "percentunit",
                            q(hourly("rag_feedback_negative_ratio"), legend("negative share")),
                            description=about("Negative / all feedback; the dashed line is "
                                              "RagNegativeFeedbackHigh's threshold", "feedback_daily", OVER_TIME),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    return d

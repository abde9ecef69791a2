"""Anomaly z-scores of the last complete UTC day against the days before it, with their baselines.

    # TYPE rag_component_latency_zscore gauge
    rag_component_latency_zscore{component="llm"} 7.9
    # TYPE rag_component_latency_baseline_mean_seconds gauge
    rag_component_latency_baseline_mean_seconds{component="llm"} 1.21
    # TYPE rag_component_latency_baseline_stddev_seconds gauge
    rag_component_latency_baseline_stddev_seconds{component="llm"} 0.08
    # TYPE rag_component_latency_scored_seconds gauge
    rag_component_latency_scored_seconds{component="llm"} 1.84
    # TYPE rag_component_latency_baseline_center_seconds gauge
    rag_component_latency_baseline_center_seconds{component="llm"} 1.2
    # TYPE rag_component_latency_baseline_spread_seconds gauge
    rag_component_latency_baseline_spread_seconds{component="llm"} 0.08
    # TYPE rag_component_latency_baseline_level_seconds gauge
    rag_component_latency_baseline_level_seconds{component="llm"} 1.17
    # TYPE rag_component_latency_baseline_outliers gauge
    rag_component_latency_baseline_outliers{component="llm"} 1
    # TYPE rag_model_tokens_zscore gauge
    rag_model_tokens_zscore{model="gpt-4o"} 4.2
    # TYPE rag_anomaly_scored_date_timestamp_seconds gauge
    rag_anomaly_scored_date_timestamp_seconds 1.7643e+09
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ..score import Score
from ..snapshot import LATENCY, USAGE, Snapshot, View, midnight_utc
from ._help import source

_RULE = ("scored: the last complete UTC day against the lookback days before it, (scored - center) / spread "
         "in the anomaly.baseline mode; absent with too few baseline days")


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """z-score, baseline moments, the band it is scored against, and scored value, per component and per model."""
    latency = view.section(LATENCY)
    usage = view.section(USAGE)
    if latency is not None:
        yield from _families(snapshot, "rag_component_latency", "component", "_seconds",
                             "mean latency of the component (latency_metrics.avg_time_ms, in seconds)",
                             latency.data.anomalies)
    if usage is not None:
        yield from _families(snapshot, "rag_model_tokens", "model", "",
                             "total tokens of the model (token_usage_daily.total_tokens)", usage.data.anomalies)
    scored = latency.data.scored_day if latency is not None else usage.data.scored_day if usage is not None else None
    if scored is not None:
        day = GaugeMetricFamily("rag_anomaly_scored_date_timestamp_seconds",
                                source(snapshot, "Start (00:00 UTC) of the day the z-scores score"))
        day.add_metric([], midnight_utc(scored))
        yield day


def _families(snapshot: Snapshot, prefix: str, label: str, unit: str, what: str,
              scores: Mapping[str, Score]) -> Iterator[Metric]:
    zscore = GaugeMetricFamily(f"{prefix}_zscore", source(snapshot, f"z-score of the {what}; {_RULE}"),
                               labels=[label])
    mean = GaugeMetricFamily(f"{prefix}_baseline_mean{unit}",
                             source(snapshot, f"Baseline mean of the {what} over the lookback days"), labels=[label])
    stddev = GaugeMetricFamily(f"{prefix}_baseline_stddev{unit}",
                               source(snapshot, f"Baseline sample standard deviation of the {what}"), labels=[label])
    scored = GaugeMetricFamily(f"{prefix}_scored{unit}",
                               source(snapshot, f"The scored day's {what}"), labels=[label])
    days = GaugeMetricFamily(f"{prefix}_baseline_samples",
                             source(snapshot, f"Days with data in the baseline of the {what}"), labels=[label])
    center = GaugeMetricFamily(f"{prefix}_baseline_center{unit}", source(
        snapshot, f"Centre of the band the {what} is scored against (the z-score is 0 there), in the mode in use"),
        labels=[label])
    spread = GaugeMetricFamily(f"{prefix}_baseline_spread{unit}", source(
        snapshot, f"Width of one z-score unit of the band the {what} is scored against, floor included, "
                  "in the mode in use"), labels=[label])
    level = GaugeMetricFamily(f"{prefix}_baseline_level{unit}", source(
        snapshot, f"The baseline's usual day of the week of the {what}, not scaled to the scored weekday "
                  "(plain: the baseline mean), in the mode in use"), labels=[label])
    outliers = GaugeMetricFamily(f"{prefix}_baseline_outliers", source(
        snapshot, f"Baseline days of the {what} left out as outliers (robust mode; 0 in plain and weekday)"),
        labels=[label])
    for key, score in sorted(scores.items()):
        if score.zscore is not None:
            zscore.add_metric([key], score.zscore)
        mean.add_metric([key], score.mean)
        stddev.add_metric([key], score.stddev)
        scored.add_metric([key], score.value)
        days.add_metric([key], score.baseline_days)
        center.add_metric([key], score.center)
        spread.add_metric([key], score.spread)
        level.add_metric([key], score.level)
        outliers.add_metric([key], score.outliers)
    yield from (zscore, mean, stddev, scored, days, center, spread, level, outliers)

"""Per-component latency and volume of the newest day in latency_metrics.

    # TYPE rag_component_latency_seconds gauge
    rag_component_latency_seconds{component="llm",statistic="p95"} 2.31
    # TYPE rag_component_requests gauge
    rag_component_requests{component="llm"} 18234.0
    # TYPE rag_component_errors gauge
    rag_component_errors{component="llm"} 41.0
    # TYPE rag_component_error_ratio gauge
    rag_component_error_ratio{component="llm"} 0.00225
    # TYPE rag_component_period_requests gauge
    rag_component_period_requests{component="llm"} 512034.0
    # TYPE rag_component_period_errors gauge
    rag_component_period_errors{component="llm"} 1187.0
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ..snapshot import LatencyData, Snapshot, View
from ._help import source


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """Latency, requests, errors and error ratio per component."""
    section = view.current("latency_metrics")
    if section is None or not isinstance(section.data, LatencyData):
        return
    latency = GaugeMetricFamily(
        "rag_component_latency_seconds",
        source(snapshot, "Stage time of a pipeline component on the newest day (latency_metrics, ms converted "
                         "to seconds); statistic is mean, p50, p90, p95 or p99"),
        labels=["component", "statistic"])
    requests = GaugeMetricFamily(
        "rag_component_requests",
        source(snapshot, "Requests that ran this component on the newest day, so far (latency_metrics.request_count)"),
        labels=["component"])
    errors = GaugeMetricFamily(
        "rag_component_errors",
        source(snapshot, "Requests that failed in this component on the newest day, so far "
                         "(latency_metrics.error_count)"),
        labels=["component"])
    error_ratio = GaugeMetricFamily(
        "rag_component_error_ratio",
        source(snapshot, "error_count / request_count of the newest day; absent with no requests"),
        labels=["component"])
    period_requests = GaugeMetricFamily(
        "rag_component_period_requests",
        source(snapshot, f"Requests that ran this component over the SLO period, the last "
                         f"{section.data.period_days} UTC days with today so far (latency_metrics.request_count, "
                         "summed; slo.period_days)"),
        labels=["component"])
    period_errors = GaugeMetricFamily(
        "rag_component_period_errors",
        source(snapshot, f"Requests that failed in this component over the SLO period, the last "
                         f"{section.data.period_days} UTC days with today so far (latency_metrics.error_count, "
                         "summed; slo.period_days)"),
        labels=["component"])
    for component, (requests_sum, errors_sum) in sorted(section.data.period.items()):
        period_requests.add_metric([component], requests_sum)
        period_errors.add_metric([component], errors_sum)
    for day in section.data.components:
        for statistic, seconds in day.latency_seconds.items():
            latency.add_metric([day.component, statistic], seconds)
        requests.add_metric([day.component], day.requests)
        errors.add_metric([day.component], day.errors)
        if day.requests > 0:
            error_ratio.add_metric([day.component], day.errors / day.requests)
    yield from (latency, requests, errors, error_ratio, period_requests, period_errors)

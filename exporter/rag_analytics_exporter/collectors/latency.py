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

from prometheus_client.metrics_core import Metric

from ..snapshot import LATENCY, Snapshot, View
from ._help import gauge


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """Latency, requests, errors and error ratio per component."""
    section = view.current(LATENCY)
    if section is None:
        return
    data = section.data
    latency = gauge(snapshot, "rag_component_latency_seconds",
                    "Stage time of a pipeline component on the newest day (latency_metrics, ms converted to seconds); "
                    "statistic is mean, p50, p90, p95 or p99", ["component", "statistic"])
    requests = gauge(snapshot, "rag_component_requests",
                     "Requests that ran this component on the newest day, so far (latency_metrics.request_count)",
                     ["component"])
    errors = gauge(snapshot, "rag_component_errors",
                   "Requests that failed in this component on the newest day, so far (latency_metrics.error_count)",
                   ["component"])
    error_ratio = gauge(snapshot, "rag_component_error_ratio",
                        "error_count / request_count of the newest day; absent with no requests", ["component"])
    period = (f"over the SLO period, the last {data.period_days} UTC days with today so far "
              "(latency_metrics.{}, summed; slo.period_days)")
    period_requests = gauge(snapshot, "rag_component_period_requests",
                            "Requests that ran this component " + period.format("request_count"), ["component"])
    period_errors = gauge(snapshot, "rag_component_period_errors",
                          "Requests that failed in this component " + period.format("error_count"), ["component"])
    for component, (requests_sum, errors_sum) in sorted(data.period.items()):
        period_requests.add_metric([component], requests_sum)
        period_errors.add_metric([component], errors_sum)
    for day in data.components:
        for statistic, seconds in day.latency_seconds.items():
            latency.add_metric([day.component, statistic], seconds)
        requests.add_metric([day.component], day.requests)
        errors.add_metric([day.component], day.errors)
        if day.requests > 0:
            error_ratio.add_metric([day.component], day.errors / day.requests)
    yield from (latency, requests, errors, error_ratio, period_requests, period_errors)

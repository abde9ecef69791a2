"""Counters that only grow within the process, from the tables' daily running totals (counters.py says how).

    # TYPE rag_component_requests_total counter
    rag_component_requests_total{component="llm"} 1834.0
    # TYPE rag_component_requests_created gauge
    rag_component_requests_created{component="llm"} 1.764e+09
    # TYPE rag_feedback_total counter
    rag_feedback_total{sentiment="negative"} 12.0
    # TYPE rag_exporter_source_corrections_total counter
    rag_exporter_source_corrections_total{counter="rag_component_requests_total",table="latency_metrics"} 2.0
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from ..counters import SPECS
from ..snapshot import Snapshot, View


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """One family per counter name; served whatever the data's age (a stopped counter is the truth)."""
    counters = snapshot.counters
    families: dict[str, CounterMetricFamily] = {}
    for spec in SPECS:
        if spec.name not in families:
            families[spec.name] = CounterMetricFamily(
                spec.name, f"{spec.help}, since the exporter started: each write's increase over the last value "
                f"read of the same row and day; a decrease is held (rag_exporter_source_corrections_total). "
                f"Read every {snapshot.refresh_interval:g}s.", labels=[*spec.label_names])
    for (name, labels), value in sorted(counters.values.items()):
        families[name].add_metric(list(labels), value, created=counters.created[(name, labels)])
    yield from families.values()
    corrections = CounterMetricFamily(
        "rag_exporter_source_corrections_total",
        "Amount by which a table's running total went down between two writes (a correction, a late or "
        "rounded value), in the counter's own unit; the counter held instead.", labels=["table", "counter"])
    for (table, counter), amount in sorted(counters.corrections.items()):
        corrections.add_metric([table, counter], amount)
    yield corrections

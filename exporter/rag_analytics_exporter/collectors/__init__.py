"""Metric families built from a snapshot: one module per group, wired by build_registry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ..snapshot import Snapshot
from . import anomalies, counters, health, latency, quality, usage

_GROUPS = (latency, usage, quality, counters, anomalies, health)


class SnapshotCollector(Collector):
    """Yields new metric families from whatever snapshot the source returns; never touches the database."""

    def __init__(self, source: Callable[[], Snapshot], clock: Callable[[], float] = time.time):
        self._source = source
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        snapshot = self._source()
        view = snapshot.view(self._clock())
        for group in _GROUPS:
            # A family with no samples (say, no z-score yet) would only be a bare TYPE line.
            yield from (family for family in group.collect(snapshot, view) if family.samples)


def build_registry(source: Callable[[], Snapshot], clock: Callable[[], float] = time.time) -> CollectorRegistry:
    """A new registry holding only the snapshot collector (no process metrics, nothing global)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(source, clock))
    return registry

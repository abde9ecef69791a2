"""Shared wording for HELP texts, so every family says where its number comes from."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily

from ..snapshot import Snapshot


def source(snapshot: Snapshot, what: str) -> str:
    """HELP text: the meaning, the source, the refresh cadence and the staleness rule."""
    return (f"{what}. From the daily aggregate tables, read every {snapshot.refresh_interval:g}s; "
            f"absent when no refresh has confirmed it for {snapshot.max_data_age:g}s.")


def chunk_source(snapshot: Snapshot, what: str) -> str:
    """HELP text of a chunk family: chunk_retrieval_stats is cumulative, not daily, and has its own interval."""
    return (f"{what}. From chunk_retrieval_stats (one cumulative row per chunk), read every "
            f"{snapshot.chunk_refresh_interval:g}s (refresh.chunk_interval); absent when no refresh has confirmed "
            f"it for {snapshot.max_data_age:g}s.")


def chunk_gauge(snapshot: Snapshot, name: str, what: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """A gauge family of the chunk table, its HELP saying so (chunk_source)."""
    return GaugeMetricFamily(name, chunk_source(snapshot, what), labels=list(labels))


def gauge(snapshot: Snapshot, name: str, what: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """A gauge family of table data, its HELP saying what it is and where it comes from (source)."""
    return GaugeMetricFamily(name, source(snapshot, what), labels=list(labels))

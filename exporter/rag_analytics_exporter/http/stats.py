"""Counters of the HTTP layer, and warnings that a flood cannot multiply."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Repeated warnings of one kind are written at most this often, with a count of the rest.
WARNING_INTERVAL_SECONDS = 60.0


class HttpStats(Collector):
    """Counters of the HTTP layer, changed and read on the event loop only (so without locks).

        # TYPE rag_exporter_http_client_disconnects_total counter
        rag_exporter_http_client_disconnects_total 1422.0
        # TYPE rag_exporter_http_refused_total counter
        rag_exporter_http_refused_total{reason="max_requests"} 0.0
        # TYPE rag_exporter_http_open_connections gauge
        rag_exporter_http_open_connections 3.0
        # TYPE rag_exporter_http_max_connections gauge
        rag_exporter_http_max_connections 512.0
        # TYPE rag_exporter_http_evicted_connections_total counter
        rag_exporter_http_evicted_connections_total{state="idle"} 0.0
    """

    REASONS = ("max_requests", "max_connections", "timeout", "too_large", "bad_request", "tls_handshake")
    EVICTED = ("idle", "reading")

    def __init__(self) -> None:
        self.disconnects = 0
        self.refused: Counter[str] = Counter()
        self.open_connections = 0
        self.max_connections = 0
        self.evicted: Counter[str] = Counter()

    def collect(self) -> Iterator[Metric]:
        disconnects = CounterMetricFamily(
            "rag_exporter_http_client_disconnects_total",
            "Connections the client closed before its response was complete, a request cut short included "
            "(its headers ended in EOF): nothing is rendered for them, and nothing is logged above debug. A kept "
            "connection closed between requests is not one.")
        disconnects.add_metric([], self.disconnects)
        refused = CounterMetricFamily(
            "rag_exporter_http_refused_total",
            "Connections or requests the server refused: max_requests (503, over web.max_requests in progress "
            "at once), max_connections (a new connection closed at once: web.max_connections were open, each "
            "with a request in progress), timeout (no complete request head within 5 s), too_large (head over "
            "64 KiB), bad_request, tls_handshake (failed or not finished within 5 s).", labels=["reason"])
        for reason in self.REASONS:
            refused.add_metric([reason], self.refused[reason])
        opened = GaugeMetricFamily(
            "rag_exporter_http_open_connections",
            "Client connections open now, TLS handshakes in progress included; at most "
            "rag_exporter_http_max_connections.", value=self.open_connections)
        most = GaugeMetricFamily(
            "rag_exporter_http_max_connections",
            "Client connections the server keeps open at most: web.max_connections, or less when the file "
            "descriptor limit leaves less room.", value=self.max_connections)
        evicted = CounterMetricFamily(
            "rag_exporter_http_evicted_connections_total",
            "Connections closed to make room for a new one while rag_exporter_http_max_connections were open: "
            "idle (kept between requests; the longest idle goes first) or, when none was, reading (no complete "
            "request head yet; the oldest goes first).", labels=["state"])
        for state in self.EVICTED:
            evicted.add_metric([state], self.evicted[state])
        yield from (disconnects, refused, opened, most, evicted)


class Warnings:
    """At most one warning per kind every WARNING_INTERVAL_SECONDS; the ones held back are counted in the next."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def warn(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -WARNING_INTERVAL_SECONDS) < WARNING_INTERVAL_SECONDS:
            self._held[kind] += 1
            return
        held = self._held.pop(kind, 0)
        self._last[kind] = now
        log.warning(message + (f" ({held} more like it since the last such warning)" if held else ""), *args,
                    exc_info=exc_info)

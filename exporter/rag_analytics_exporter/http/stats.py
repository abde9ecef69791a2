"""Counters of the HTTP layer, and warnings that a flood cannot multiply."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
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
    """

    REASONS = ("max_requests", "timeout", "too_large", "bad_request", "tls_handshake")

    def __init__(self) -> None:
        self.disconnects = 0
        self.refused: Counter[str] = Counter()

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
            "at once), timeout (no complete request head within 5 s), too_large (head over 64 KiB), bad_request, "
            "tls_handshake (failed or not finished within 5 s).", labels=["reason"])
        for reason in self.REASONS:
            refused.add_metric([reason], self.refused[reason])
        yield from (disconnects, refused)


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

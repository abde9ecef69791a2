"""HTTP serving of /metrics from the in-memory snapshot: rendered once per snapshot, gzip included."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from .collectors import build_registry
from .snapshot import Snapshot

log = logging.getLogger(__name__)

_LANDING = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>RAG analytics exporter</title></head>
<body><h1>RAG analytics exporter</h1>
<p>Prometheus metrics from the RAG service's daily aggregate tables.</p>
<ul><li><a href="metrics">/metrics</a></li><li><a href="-/healthy">/-/healthy</a></li></ul>
</body></html>
"""


class Exposition:
    """The encoded /metrics body: snapshot families cached per snapshot, process families live."""

    def __init__(self, source: Callable[[], Snapshot], clock: Callable[[], float] = time.time):
        self._source = source
        self._clock = clock
        self._lock = threading.Lock()
        self._key: tuple[Snapshot, tuple[tuple[str, ...], date]] | None = None
        self._raw = b""
        self._gzip = b""
        # Process figures change every second, so they are rendered on each scrape;
        # they are small enough that this costs a fraction of a millisecond.
        self._live = CollectorRegistry(auto_describe=False)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self._live)

    def _cached(self) -> tuple[bytes, bytes]:
        snapshot = self._source()
        now = self._clock()
        key = (snapshot, snapshot.view(now).key)
        with self._lock:
            if self._key is None or self._key[0] is not key[0] or self._key[1] != key[1]:
                self._raw = generate_latest(build_registry(lambda: snapshot, lambda: now))
                self._gzip = gzip.compress(self._raw, compresslevel=6)
                self._key = key
            return self._raw, self._gzip

    def body(self, gzipped: bool) -> bytes:
        """The full exposition, as one gzip stream of two members when gzipped (RFC 1952 allows it)."""
        raw, packed = self._cached()
        live = generate_latest(self._live)
        if gzipped:
            return packed + gzip.compress(live, compresslevel=1)
        return raw + live


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    server_version = "rag-analytics-exporter"
    sys_version = ""
    timeout = 10  # a client that stalls mid-request is dropped, not waited on forever

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def _method_not_allowed(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed  # noqa: N815

    def _respond(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        headers: dict[str, str] = {}
        if path == "/metrics":
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            body = self.server.exposition.body(gzipped)
            headers["Content-Type"] = CONTENT_TYPE_PLAIN_0_0_4
            if gzipped:
                headers["Content-Encoding"] = "gzip"
            status = 200
        elif path == "/":
            status, body, headers["Content-Type"] = 200, _LANDING, "text/html; charset=utf-8"
        elif path == "/-/healthy":
            status, body, headers["Content-Type"] = 200, b"OK\n", "text/plain; charset=utf-8"
        else:
            status, body, headers["Content-Type"] = 404, b"404 page not found\n", "text/plain; charset=utf-8"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer(ThreadingHTTPServer):
    """A threading HTTP server whose shutdown waits for in-flight requests to finish."""

    daemon_threads = False
    block_on_close = True
    request_queue_size = 128  # 50 scrapers arriving at once must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], exposition: Exposition):
        self.exposition = exposition
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


def serve_in_thread(server: MetricsServer) -> threading.Thread:
    """Run server.serve_forever in a background thread and return that thread."""
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread

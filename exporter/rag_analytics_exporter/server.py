"""HTTP serving of /metrics from the in-memory snapshot: rendered once per snapshot, gzip included."""

from __future__ import annotations

import gzip
import logging
import select
import socket
import ssl
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
from .webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)

# A client gets this long to finish its TLS handshake, and then to send each part of its
# request; one that stalls is dropped. Each connection has its own thread, so a stalled
# client never holds up another scrape.
CLIENT_TIMEOUT_SECONDS = 5.0

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
        # (snapshot, view key, raw, gzip), replaced whole in one assignment: readers never lock,
        # and a scrape never waits for another thread's render.
        self._cache: tuple[Snapshot, tuple[tuple[str, ...], date], bytes, bytes] | None = None
        # Process figures change every second, so they are rendered on each scrape;
        # they are small enough that this costs a fraction of a millisecond.
        self._live = CollectorRegistry(auto_describe=False)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self._live)

    def _cached(self) -> tuple[bytes, bytes]:
        snapshot = self._source()
        now = self._clock()
        key = snapshot.view(now).key
        cache = self._cache
        if cache is None or cache[0] is not snapshot or cache[1] != key:
            raw = generate_latest(build_registry(lambda: snapshot, lambda: now))
            cache = (snapshot, key, raw, gzip.compress(raw, compresslevel=6))
            self._cache = cache
        return cache[2], cache[3]

    def warm(self) -> None:
        """Render the current snapshot now (from the refresh thread), so no scrape pays for it."""
        self._cached()

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
    timeout = CLIENT_TIMEOUT_SECONDS

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def _method_not_allowed(self) -> None:
        self._send(405, b"405 method not allowed\n", {"Allow": "GET, HEAD"}, send_body=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _method_not_allowed  # noqa: N815

    def _respond(self, send_body: bool) -> None:
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"401 unauthorized\n",
                       {"WWW-Authenticate": 'Basic realm="rag-analytics-exporter", charset="UTF-8"'}, send_body)
            return
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            headers = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4} | ({"Content-Encoding": "gzip"} if gzipped else {})
            self._send(200, self.server.exposition.body(gzipped), headers, send_body)
        elif path == "/":
            self._send(200, _LANDING, {"Content-Type": "text/html; charset=utf-8"}, send_body)
        elif path == "/-/healthy":
            self._send(200, b"OK\n", {}, send_body)
        else:
            self._send(404, b"404 page not found\n", {}, send_body)

    def _send(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in ({"Content-Type": "text/plain; charset=utf-8"} | self.server.headers | headers).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer(ThreadingHTTPServer):
    """A threading HTTP(S) server: TLS handshakes run in the connection's own thread, with a timeout.

    Every response closes its connection (HTTP/1.0, http.server's default), so no idle keep-alive
    ever holds up stop(), which is graceful: connections the kernel already accepted (the listen
    backlog) are still served, and requests in flight finish.
    """

    daemon_threads = True
    block_on_close = False  # stop() waits for the connections it must serve
    request_queue_size = 128  # 50 scrapers arriving at once must not overflow the listen backlog

    def __init__(self, address: tuple[str, int], exposition: Exposition, web: WebConfig | None = None):
        web = web or WebConfig()
        self.exposition = exposition
        self.tls = web.tls
        self.headers = dict(web.headers)
        self.auth = BasicAuth(web.users)
        self._open = 0
        self._idle = threading.Condition()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Counted in the accepting thread, before the connection's own thread starts, so that
        # stop() can never miss a connection that was accepted.
        with self._idle:
            self._open += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            # The accept loop hands over the plain socket; the handshake happens here, so a
            # client that connects and never says hello only ever blocks its own thread.
            if self.tls is not None:
                try:
                    request.settimeout(CLIENT_TIMEOUT_SECONDS)
                    request = self.tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError) as exc:
                    log.debug("TLS handshake with %s failed: %s", client_address, exc)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            with self._idle:
                self._open -= 1
                self._idle.notify_all()

    def stop(self, timeout: float) -> bool:
        """Stop accepting, then serve what the kernel had accepted and what is in flight; True if all
        of it finished within timeout seconds."""
        deadline = time.monotonic() + timeout
        self.shutdown()
        # Handshakes the kernel completed before now sit in the listen backlog. Their clients have
        # sent, or are sending, a request: accept and serve them, since closing the socket with
        # them inside would reset them. Whatever connects after the close is refused.
        backlog = 0
        while time.monotonic() < deadline and select.select([self], [], [], 0)[0]:
            self._handle_request_noblock()
            backlog += 1
        self.server_close()
        if backlog:
            log.debug("serving %d connections from the listen backlog before exit", backlog)
        with self._idle:
            return self._idle.wait_for(lambda: self._open == 0, max(0.0, deadline - time.monotonic()))


def serve_in_thread(server: MetricsServer) -> threading.Thread:
    """Run server.serve_forever in a background thread and return that thread."""
    # stop() waits for the accept loop to notice, which it does once per poll interval.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True)
    thread.start()
    return thread

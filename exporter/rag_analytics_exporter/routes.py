"""The exporter's endpoints (/metrics, / and /-/healthy), and the HTTP server that serves them."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .exposition import Exposition
from .http.request import accepts
from .http.response import Response, error
from .http.server import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUESTS, HttpServer
from .http.stats import HttpStats
from .webconfig import BasicAuth, WebConfig

_LANDING = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>RAG analytics exporter</title></head>
<body><h1>RAG analytics exporter</h1>
<p>Prometheus metrics from the RAG service's daily aggregate tables.</p>
<ul><li><a href="metrics">/metrics</a></li><li><a href="-/healthy">/-/healthy</a></li></ul>
</body></html>
"""


class Routes:
    """The handler: a path and its request headers to a response, on the server's loop."""

    def __init__(self, exposition: Exposition):
        self._exposition = exposition

    def __call__(self, method: str, path: str, headers: Mapping[str, str]) -> Response:
        if method not in ("GET", "HEAD"):
            return error(405, {"Allow": "GET, HEAD"})
        if path == "/metrics":
            gzipped = accepts(headers.get("accept-encoding", ""), "gzip")
            extra = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4} | ({"Content-Encoding": "gzip"} if gzipped else {})
            return Response(200, self._exposition.body(gzipped), extra)
        if path == "/":
            return Response(200, _LANDING, {"Content-Type": "text/html; charset=utf-8"})
        if path == "/-/healthy":
            return Response(200, b"OK\n")
        return error(404)


def metrics_server(address: tuple[str, int], exposition: Exposition, web: WebConfig | None = None,
                   max_requests: int = DEFAULT_MAX_REQUESTS, stats: HttpStats | None = None,
                   max_connections: int = DEFAULT_MAX_CONNECTIONS) -> HttpServer:
    """The exporter's server: its routes, behind web.config's TLS, headers and basic auth.

    stats: the server's counters, when the exposition shows them (the app passes the ones it gave
    its Exposition as live collectors).
    """
    web = web or WebConfig()
    auth = BasicAuth(web.users)
    return HttpServer(address, Routes(exposition), tls=web.tls, headers=web.headers,
                      authorize=auth.check if auth.enabled else None, max_requests=max_requests,
                      max_connections=max_connections, stats=stats)

"""The protocol layer's cost per request: this server's head parser against h11. Prints figures.

    .venv/bin/python bench/http_parser.py

Issue 20 item 16 asked whether h11 (python-hyper's HTTP/1.1 state machine) should replace the
hand-written head parser when persistent connections came. Each variant takes a Prometheus
scrape request and writes a response head and an 8.6 KiB body (the gzipped exposition's size),
with no socket: what is timed is only what runs on the event loop per request. h11 is in the
environment as a dependency of the test tools, not of the exporter.
"""

from __future__ import annotations

import timeit

import h11

from rag_analytics_exporter.http.request import parse_head, split_head
from rag_analytics_exporter.http.response import Response, encode_head

REQUEST = (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9187\r\nUser-Agent: Prometheus/3.0.0\r\n"
           b"Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1\r\n"
           b"Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")
BODY = b"x" * 8600
HEADERS = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Content-Encoding": "gzip"}


def ours() -> bytes:
    head, _ = split_head(bytearray(REQUEST))
    request = parse_head(head)
    assert request.headers["accept-encoding"] == "gzip"
    return encode_head(Response(200, BODY, HEADERS), {}, request.version, close=False) + BODY


KEPT = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)


def with_h11(connection: h11.Connection | None = None) -> bytes:
    connection = connection or h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    connection.receive_data(REQUEST)
    request = connection.next_event()
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers}
    assert headers["accept-encoding"] == "gzip"
    connection.next_event()  # EndOfMessage
    out = connection.send(h11.Response(status_code=200, headers=[
        ("Server", "rag-analytics-exporter"), ("Date", "Tue, 01 Dec 2026 19:00:00 GMT"), *HEADERS.items(),
        ("Content-Length", str(len(BODY)))]))
    out += connection.send(h11.Data(data=BODY)) + connection.send(h11.EndOfMessage())
    if connection is KEPT:
        connection.start_next_cycle()
    return out


def main() -> None:
    print("| variant | us per request and response (best of 5 x 20,000) |")
    print("|---|---:|")
    for name, run in (("hand-written head parser (this server)", ours), ("h11, a connection per request", with_h11),
                      ("h11, one kept connection", lambda: with_h11(KEPT))):
        best = min(timeit.repeat(run, number=20_000, repeat=5)) / 20_000
        print(f"| {name} | {best * 1e6:.1f} |")


if __name__ == "__main__":
    main()

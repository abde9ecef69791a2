"""What a handler answers, and how it is written on the wire."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Response:
    """A status, a body (sent whole, with its Content-Length) and the headers particular to it."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def error(status: int, headers: Mapping[str, str] | None = None) -> Response:
    """A plain-text error response, "404 page not found" style."""
    text = {404: "page not found", 503: "too many requests at once"}.get(status, REASONS[status].lower())
    return Response(status, f"{status} {text}\n".encode(), headers or {})


def encode_head(response: Response, base: Mapping[str, str], version: str, close: bool) -> bytes:
    """Status line and headers: defaults, then base (web.headers), then the response's own.

    version: the request's (HTTP/1.0 or HTTP/1.1), as Go's net/http answers; close: whether the
    connection closes after this response (an HTTP/1.1 connection persists by default).
    """
    fields = ({"Server": "rag-analytics-exporter", "Date": email.utils.formatdate(usegmt=True),
               "Content-Type": "text/plain; charset=utf-8"} | dict(base) | dict(response.headers)
              | {"Content-Length": str(len(response.body))} | ({"Connection": "close"} if close else {}))
    head = f"{version} {response.status} {REASONS[response.status]}\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode("latin-1")

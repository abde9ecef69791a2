"""What a client sent: request heads, parsed, or the reason they are refused."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# Request line and headers together; http.server's limit was 64 KiB per line.
MAX_HEAD_BYTES = 64 * 1024


class Refused(Exception):
    """A request answered with an error status, counted under reason."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Head:
    """A parsed request head. Header names are lowercased; a repeated header keeps its last value."""

    method: str
    target: str
    version: str  # HTTP/1.0 or HTTP/1.1
    headers: Mapping[str, str]

    @property
    def persistent(self) -> bool:
        """Whether the client lets the connection carry another request (RFC 9112 section 9.3).

        HTTP/1.0 keep-alive is not offered: every client worth serving speaks HTTP/1.1.
        """
        return self.version == "HTTP/1.1" and "close" not in tokens(self.headers.get("connection", ""))

    @property
    def has_body(self) -> bool:
        """Whether a body follows the head: never read, so the connection closes after the response."""
        return "transfer-encoding" in self.headers or self.headers.get("content-length", "0") != "0"


# A line feed without its carriage return, in a head whose lines end in CRLF.
_BARE_LF = re.compile(rb"(?<!\r)\n")


def split_head(buffer: bytearray) -> tuple[bytes, int] | None:
    """The first request head in buffer (without its blank line) and the length it takes with it,
    or None while it is incomplete.

    A head whose request line ends in a bare LF may use bare LF throughout, as http.server accepted.
    One whose request line ends in CRLF ends at CRLF CRLF only: a bare LF in it is returned at once
    as the end of a head, which parse_head refuses. Otherwise "\n\n" would end the head here while a
    proxy in front, which ends it at CRLF CRLF, took what follows for headers, and a request hidden
    there would be answered.
    """
    start = len(buffer) - len(buffer.lstrip(b"\r\n"))  # empty lines before a request line (RFC 9112 section 2.2)
    first = buffer.find(b"\n", start)
    if first < 0:
        return None
    if buffer[first - 1] != ord("\r"):
        end = buffer.find(b"\n\n", first)
        return None if end < 0 else (bytes(buffer[:end]), end + 2)
    end = buffer.find(b"\r\n\r\n", first - 1)
    stop = len(buffer) if end < 0 else end
    if buffer.count(b"\n", start, stop) != buffer.count(b"\r\n", start, stop):  # counted in C: the usual case
        bare = _BARE_LF.search(buffer, start, stop)
        if bare is not None:
            return bytes(buffer[:bare.end()]), bare.end()
    return None if end < 0 else (bytes(buffer[:end]), end + 4)


def parse_head(head: bytes) -> Head:
    """The head's request line and headers; Refused("bad_request", 400) when malformed.

    Malformed includes line ends that mix CRLF and bare LF, a CR anywhere else, and Content-Length
    given twice with different values (RFC 9112 section 6.3: the body's end would be a guess, and a
    request in it could be answered as the next one).
    """
    # Empty lines before a request line are ignored (RFC 9112 section 2.2), as a client may send
    # a CRLF after a previous request.
    text = head.decode("latin-1").lstrip("\r\n")
    crlf = text.find("\n") > 0 and text[text.find("\n") - 1] == "\r"
    if (text.count("\r") != text.count("\r\n") or text.count("\n") != text.count("\r\n")) if crlf else "\r" in text:
        raise Refused("bad_request", 400)
    lines = text.split("\r\n" if crlf else "\n")
    parts = lines[0].split()
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise Refused("bad_request", 400)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise Refused("bad_request", 400)
        name, value = name.lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise Refused("bad_request", 400)
        headers[name] = value
    if not headers.get("content-length", "0").isdigit():
        raise Refused("bad_request", 400)
    return Head(parts[0], parts[1], parts[2], headers)


def path_of(target: str) -> str:
    """The path of a request target without its query, in origin form (/metrics?x) or absolute form
    (http://host:port/metrics, which a server must accept: RFC 9112 section 3.2.2)."""
    if target[:8].lower().startswith(("http://", "https://")):
        return urlsplit(target).path or "/"
    return target.split("?", 1)[0]


def tokens(value: str) -> list[str]:
    """The lowercased elements of a comma-separated header value."""
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def accepts(accept_encoding: str, coding: str) -> bool:
    """Whether an Accept-Encoding value allows coding: named with q above 0, or matched by *
    (RFC 9110 section 12.5.3). An element whose q is not a number counts as not acceptable."""
    weights: dict[str, float] = {}
    for element in tokens(accept_encoding):
        name, *params = (part.strip() for part in element.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[name] = weight
    return weights.get(coding, weights.get("*", 0.0)) > 0

"""What a client sent: the request head, parsed, or the reason it is refused."""

from __future__ import annotations

# Request line and headers together; http.server's limit was 64 KiB per line.
MAX_HEAD_BYTES = 64 * 1024


class Refused(Exception):
    """A request answered with an error status, counted under reason."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and headers (names lowercased) of a request head without its blank line."""
    lines = head.decode("latin-1").replace("\r\n", "\n").lstrip("\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise Refused("bad_request", 400)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise Refused("bad_request", 400)
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], headers


def end_of_head(data: bytearray) -> int:
    """Where the blank line that ends a request head starts, or -1 (bare LF line ends accepted, as http.server)."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else -1


def path_of(target: str) -> str:
    """The path of a request target, without its query."""
    return target.split("?", 1)[0]

"""One client connection: read a request head, hand it to the server, write the response."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from .request import MAX_HEAD_BYTES, Refused, end_of_head, parse_head
from .response import Response, encode_head, error
from .stats import HttpStats

# A client gets this long to finish its TLS handshake, then this long to send its whole request
# head, then this long to take the response; one that stalls is dropped.
CLIENT_TIMEOUT_SECONDS = 5.0


class Host(Protocol):
    """What a connection needs of the server that accepted it."""

    loop: asyncio.AbstractEventLoop
    stats: HttpStats

    def opened(self, connection: Connection) -> None:
        """The connection is established."""

    def request(self, connection: Connection, method: str, target: str, headers: Mapping[str, str]) -> None:
        """A complete request head: answer it (later, or at once) with connection.respond()."""

    def sent(self, connection: Connection) -> None:
        """The connection's response is all handed to the kernel."""

    def closed(self, connection: Connection) -> None:
        """The connection is gone."""

    def warn(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        """A warning of this kind, rate-limited."""


class Connection(asyncio.Protocol):
    """Read one request head, answer it, close. Callbacks only, no task."""

    def __init__(self, host: Host, headers: Mapping[str, str]):
        self._host = host
        self._loop = host.loop
        self._headers = headers  # sent with every response (web.headers)
        self._head = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._requested = False  # the head is complete
        self._responded = False
        self._gone = False  # counted as a client disconnect already

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._host.opened(self)
        self._timer = self._loop.call_later(CLIENT_TIMEOUT_SECONDS, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._requested or self._responded:
            return  # one request per connection; what follows is read and dropped
        self._head += data
        end = end_of_head(self._head)
        if end < 0:
            if len(self._head) > MAX_HEAD_BYTES:
                self._refuse(Refused("too_large", 431))
            return
        try:
            if end > MAX_HEAD_BYTES:
                raise Refused("too_large", 431)
            method, target, headers = parse_head(bytes(self._head[:end]))
        except Refused as refused:
            self._refuse(refused)
            return
        self._head.clear()
        self._requested = True
        try:
            self._host.request(self, method, target, headers)
        except Exception:  # noqa: BLE001 (a bug in one answer must not flood the log through the loop's handler)
            self._host.warn("internal", "error answering a request", exc_info=True)
            self.abort()

    def eof_received(self) -> bool:
        if self._requested and not self._responded:
            return True  # the client only half-closed: its response still goes out
        if not self._responded:
            # The head ended in EOF, not in a blank line: a request cut short. Nothing is rendered.
            self._went_away()
        return False  # close (after what is written has been sent)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if exc is not None:
            self._went_away()
        self._host.closed(self)

    def respond(self, response: Response, send_body: bool = True, linger: bool = False) -> None:
        """Write the whole response and close once it is sent; a client that does not take it is cut off.

        linger: the client may still be sending (a refused request): say so with a FIN, and read and
        drop its input for a second before closing, since closing on unread input would reset the
        connection, and the client might lose the response.
        """
        if self._transport.is_closing():
            return
        self._responded = True
        head = encode_head(response, self._headers, len(response.body))
        self._transport.write(head + (response.body if send_body else b""))
        if not self._transport.get_write_buffer_size():
            self._host.sent(self)
        self._timer.cancel()
        if linger:
            if self._transport.can_write_eof():
                self._transport.write_eof()
            self._timer = self._loop.call_later(1.0, self._transport.close)
            return
        self._transport.close()
        self._timer = self._loop.call_later(CLIENT_TIMEOUT_SECONDS, self._transport.abort)

    def abort(self) -> None:
        """Drop the connection at once."""
        self._transport.abort()

    def _refuse(self, refused: Refused) -> None:
        self._host.stats.refused[refused.reason] += 1
        self.respond(error(refused.status), linger=True)

    def _timed_out(self) -> None:
        # No complete request head in time (a stalled client, or a TLS peer that never finished):
        # dropped without a response, as http.server did.
        self._host.stats.refused["timeout"] += 1
        self._transport.abort()

    def _went_away(self) -> None:
        if not self._gone:
            self._gone = True
            self._host.stats.disconnects += 1

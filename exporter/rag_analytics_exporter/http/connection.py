"""One client connection: HTTP/1.1 with persistent connections, one request at a time.

Requests are answered in order. The next request (pipelined, or sent later) is read only once
the previous response is all handed to the kernel, so a client that sends without reading
makes the server buffer one response, not many.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Protocol, cast

from .request import MAX_HEAD_BYTES, Head, Refused, parse_head, split_head
from .response import Response, encode_head, error
from .stats import HttpStats

# A client gets this long to finish its TLS handshake, then this long to send its whole request
# head, then this long to take the response; one that stalls is dropped.
CLIENT_TIMEOUT_SECONDS = 5.0
# A persistent connection with no request in progress is closed after this long. Longer than a
# 1-minute scrape interval, so that Prometheus keeps one connection per target at the usual ones
# (15 s to 60 s); nginx's default keepalive_timeout. An idle connection holds no request slot.
IDLE_TIMEOUT_SECONDS = 75.0


class Host(Protocol):
    """What a connection needs of the server that accepted it."""

    loop: asyncio.AbstractEventLoop
    stats: HttpStats
    stopping: bool  # answer with Connection: close, and close once idle

    def opened(self, connection: Connection) -> None:
        """The connection is established."""

    def request(self, connection: Connection, method: str, target: str, headers: Mapping[str, str]) -> None:
        """A complete request head: answer it (later, or at once) with connection.respond()."""

    def sent(self, connection: Connection) -> None:
        """The connection's response is all handed to the kernel."""

    def closed(self, connection: Connection) -> None:
        """The connection is gone."""

    def idle(self, connection: Connection) -> None:
        """The connection waits for a next request (a kept connection between requests)."""

    def busy(self, connection: Connection) -> None:
        """The connection's next request has begun."""

    def warn(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        """A warning of this kind, rate-limited."""


class Connection(asyncio.Protocol):
    """Read request heads and answer them in order, until either side closes. Callbacks only, no task."""

    def __init__(self, host: Host, headers: Mapping[str, str], tls: ssl.SSLContext | None = None):
        self._host = host
        self._loop = host.loop
        self._headers = headers  # sent with every response (web.headers)
        self.tls = tls  # the TLS context it was accepted with (None: plain HTTP)
        self._retired = False  # the server's TLS changed since: close after the request in progress
        self._buffer = bytearray()  # received and not yet parsed
        self._transport: asyncio.Transport  # set by connection_made, the first call the loop makes
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False  # the timer is the idle timeout (no byte of a next request yet)
        self._request: Head | None = None  # the request in progress, from its head to its response's flush
        self._close = False  # close after the response in progress
        self._eof = False  # the client has sent all it will send
        self._discarding = False  # closing: what the client still sends is read and dropped
        self._flushing = False  # a response is written and the transport's buffer not yet empty
        self._paused = False  # reading paused: the buffer holds more than a head while a request is answered
        self._served = 0
        self._gone = False  # counted as a client disconnect already

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's loop hands every protocol an asyncio.Transport (plain or TLS).
        self._transport = cast(asyncio.Transport, transport)
        # pause_writing() as soon as anything is buffered, resume_writing() once it is all sent:
        # a response counts as sent, and frees its request slot, only then.
        self._transport.set_write_buffer_limits(high=0)
        self._host.opened(self)
        self._arm(CLIENT_TIMEOUT_SECONDS, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._buffer += data
        if self._request is None:
            self._read_head()
        elif len(self._buffer) > MAX_HEAD_BYTES and not self._paused:
            # A client that pipelines faster than it is answered: its next requests wait in the
            # socket, not in memory, until their turn.
            self._paused = True
            self._transport.pause_reading()

    def _read_head(self) -> None:
        if self._request is not None or self._discarding or self._transport.is_closing():
            return
        if self._paused:
            self._paused = False
            self._transport.resume_reading()
        if not self._buffer:
            return
        if self._idle:  # the first byte of a next request: from now on it has the client timeout
            self._arm(CLIENT_TIMEOUT_SECONDS, self._timed_out)
            self._host.busy(self)
        found = split_head(self._buffer)
        if found is None:
            if len(self._buffer) > MAX_HEAD_BYTES:
                self._refuse(Refused("too_large", 431))
            return
        head, length = found
        try:
            if length > MAX_HEAD_BYTES:
                raise Refused("too_large", 431)
            request = parse_head(head)
        except Refused as refused:
            self._refuse(refused)
            return
        del self._buffer[:length]
        self._request = request
        # A body is never read, so what follows it cannot be told from a next request: close after.
        self._close = not request.persistent or request.has_body
        self._cancel_timer()
        try:
            self._host.request(self, request.method, request.target, request.headers)
        except Exception:  # noqa: BLE001 (a bug in one answer must not flood the log through the loop's handler)
            self._host.warn("internal", "error answering a request", exc_info=True)
            self.abort()

    def eof_received(self) -> bool:
        self._eof = True
        if self._request is not None or split_head(self._buffer) is not None:
            return True  # the client only half-closed: the responses to what it sent still go out
        if self._buffer.strip() or not self._served:
            # The head ended in EOF, not in a blank line: a request cut short. Nothing is rendered.
            self._went_away()
        return False  # close (after what is written has been sent)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if exc is not None and (self._request is not None or self._buffer or not self._served):
            self._went_away()
        self._host.closed(self)

    def respond(self, response: Response, send_body: bool = True) -> None:
        """Write the response to the request in progress; a client that does not take it in time is cut off."""
        request = self._request
        if self._transport.is_closing() or request is None:
            return
        close = self._close or self._retired or self._host.stopping or (self._eof and split_head(self._buffer) is None)
        self._close = close
        head = encode_head(response, self._headers, request.version, close)
        self._served += 1
        self._flushing = True
        # A TLS transport may call resume_writing() inside write() (asyncio's SSL protocol pauses and
        # resumes at each look at its buffer when the high-water mark is 0): then _sent() has run already.
        self._transport.write(head + (response.body if send_body else b""))
        if not close:
            if self._flushing and self._transport.get_write_buffer_size():
                self._arm(CLIENT_TIMEOUT_SECONDS, self.abort)
            elif self._flushing:
                self._sent()
            return
        # Unread input (a body, a pipelined request, a refused head): the client may still be
        # sending. Say so with a FIN, and read and drop its input for a second before closing,
        # since closing on unread input would reset the connection, and the client might lose
        # the response.
        linger = bool(self._buffer) or request.has_body
        self._discarding = True
        self._buffer.clear()
        if self._flushing and not self._transport.get_write_buffer_size():
            self._sent()
        if linger:
            if self._transport.can_write_eof():
                self._transport.write_eof()
            self._arm(1.0, self._transport.close)
            return
        self._transport.close()
        self._arm(CLIENT_TIMEOUT_SECONDS, self._transport.abort)

    def resume_writing(self) -> None:
        if self._flushing:
            self._sent()

    def _sent(self) -> None:
        """The response is all handed to the kernel: its slot is free, and a next request may be read."""
        self._flushing = False
        self._host.sent(self)
        if self._discarding or self._close or self._transport.is_closing():
            return  # the response said Connection: close, and respond() closes
        if self._host.stopping or self._retired or (self._eof and split_head(self._buffer) is None):
            # The server stops or was reconfigured meanwhile, or the client half-closed after its last request.
            self._transport.close()
            return
        self._request = None
        self._arm(IDLE_TIMEOUT_SECONDS, self._transport.close)
        self._idle = True
        self._host.idle(self)
        # A pipelined request, if one came: in a callback of its own, so that a long pipeline
        # neither recurses nor holds the loop from the other connections.
        self._loop.call_soon(self._read_head)

    def close_if_idle(self) -> None:
        """The server is stopping: close now if no request is in progress and one was served.

        A connection that has served none yet is left to send its first request, which is
        answered (with Connection: close): its client connected before the stop.
        """
        if self._request is None and self._served and not self._buffer.strip():
            self._transport.close()

    @property
    def reading(self) -> bool:
        """Whether the connection waits for a complete request head, its first or one begun after an idle wait."""
        return self._request is None and not self._idle and not self._transport.is_closing()

    def retire(self) -> None:
        """The server's TLS is no longer the one this connection was accepted with: close it now when
        no request is in progress, else once that request is answered. Its client reconnects to the
        server as it is now; a plain connection kept open would go on serving plain HTTP after TLS
        was turned on."""
        self._retired = True
        if self._request is None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._transport.abort()

    def _refuse(self, refused: Refused) -> None:
        self._host.stats.refused[refused.reason] += 1
        self._request = Head("", "", "HTTP/1.1", {})
        self._close = True
        self.respond(error(refused.status))

    def _timed_out(self) -> None:
        # No complete request head in time (a stalled client, or a TLS peer that never finished):
        # dropped without a response, as http.server did.
        self._host.stats.refused["timeout"] += 1
        self._transport.abort()

    def _arm(self, delay: float, callback: Callable[[], object]) -> None:
        self._cancel_timer()
        self._idle = False
        self._timer = self._loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _went_away(self) -> None:
        if not self._gone:
            self._gone = True
            self._host.stats.disconnects += 1

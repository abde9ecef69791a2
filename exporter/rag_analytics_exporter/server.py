"""HTTP serving of /metrics from the in-memory snapshot, on an asyncio event loop in a thread of its own.

The body is rendered once per snapshot (gzip included). A connection costs a coroutine, not a
thread, so thousands of stalled clients cost memory only; bcrypt runs in a small thread pool,
off the loop; at most web.max_requests requests are answered at once, and the rest get 503.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import gzip
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .collectors import build_registry
from .snapshot import Snapshot
from .webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)

# A client gets this long to finish its TLS handshake, then this long to send its whole request
# head, then this long to take the response; one that stalls is dropped.
CLIENT_TIMEOUT_SECONDS = 5.0
# Request line and headers together; http.server's limit was 64 KiB per line.
MAX_HEAD_BYTES = 64 * 1024
# Requests answered at once by default, as node_exporter's --web.max-requests.
DEFAULT_MAX_REQUESTS = 40
# Repeated warnings of one kind are written at most this often, with a count of the rest.
WARNING_INTERVAL_SECONDS = 60.0

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
        self.http = HttpStats()
        self._live.register(self.http)

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
            "(its headers ended in EOF): nothing is rendered for them, and nothing is logged above debug.")
        disconnects.add_metric([], self.disconnects)
        refused = CounterMetricFamily(
            "rag_exporter_http_refused_total",
            "Connections or requests the server refused: max_requests (503, over web.max_requests in progress "
            "at once), timeout (no complete request head within 5 s), too_large (head over 64 KiB), bad_request, "
            "tls_handshake (failed or not finished within 5 s).", labels=["reason"])
        for reason in self.REASONS:
            refused.add_metric([reason], self.refused[reason])
        yield from (disconnects, refused)


class _Warnings:
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


class _Refused(Exception):
    """A request answered with an error status, counted under reason."""

    def __init__(self, reason: str, status: int):
        super().__init__(reason)
        self.reason = reason
        self.status = status


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Method, target and headers (names lowercased) of a request head without its blank line."""
    lines = head.decode("latin-1").replace("\r\n", "\n").lstrip("\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refused("bad_request", 400)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _Refused("bad_request", 400)
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], headers


class _Connection(asyncio.Protocol):
    """One client connection: read one request head, answer it, close. Callbacks only, no task."""

    def __init__(self, server: MetricsServer):
        self._server = server
        self._loop = server.loop
        self._head = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.requested = False  # the head is complete
        # Holds one of web.max_requests from its complete head until its response is all handed to
        # the kernel: answers on the loop take no time, so what the bound counts is requests
        # waiting for bcrypt and responses that a slow client has not taken yet.
        self.holds_slot = False
        self._responded = False
        self._gone = False  # counted as a client disconnect already

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)
        self._timer = self._loop.call_later(CLIENT_TIMEOUT_SECONDS, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self.requested or self._responded:
            return  # one request per connection; what follows is read and dropped
        self._head += data
        end = _end_of_head(self._head)
        if end < 0:
            if len(self._head) > MAX_HEAD_BYTES:
                self._refuse(_Refused("too_large", 431))
            return
        try:
            if end > MAX_HEAD_BYTES:
                raise _Refused("too_large", 431)
            method, target, headers = parse_head(bytes(self._head[:end]))
        except _Refused as refused:
            self._refuse(refused)
            return
        self._head.clear()
        self.requested = True
        try:
            self._server.answer(self, method, target, headers)
        except Exception:  # noqa: BLE001 (a bug in one answer must not flood the log through the loop's handler)
            self._server.warn("internal", "error answering a request", exc_info=True)
            self.abort()

    def eof_received(self) -> bool:
        if self.requested and not self._responded:
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
        self._server.forget(self)

    def respond(self, status: int, body: bytes, headers: dict[str, str], send_body: bool,
                linger: bool = False) -> None:
        """Write the whole response and close once it is sent; a client that does not take it is cut off.

        linger: the client may still be sending (a refused request): say so with a FIN, and read and
        drop its input for a second before closing, since closing on unread input would reset the
        connection, and the client might lose the response.
        """
        if self._transport.is_closing():
            return
        fields = ({"Server": "rag-analytics-exporter", "Date": email.utils.formatdate(usegmt=True),
                   "Content-Type": "text/plain; charset=utf-8"} | self._server.headers | headers
                  | {"Content-Length": str(len(body)), "Connection": "close"})
        head = f"HTTP/1.0 {status} {_REASONS[status]}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        self._responded = True
        self._transport.write(head.encode("latin-1") + b"\r\n" + (body if send_body else b""))
        if not self._transport.get_write_buffer_size():
            self._server.release(self)
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

    def _refuse(self, refused: _Refused) -> None:
        self._server.http.refused[refused.reason] += 1
        self.respond(refused.status, f"{refused.status} {_REASONS[refused.status].lower()}\n".encode(), {}, True,
                     linger=True)

    def _timed_out(self) -> None:
        # No complete request head in time (a stalled client, or a TLS peer that never finished):
        # dropped without a response, as http.server did.
        self._server.http.refused["timeout"] += 1
        self._transport.abort()

    def _went_away(self) -> None:
        if not self._gone:
            self._gone = True
            self._server.http.disconnects += 1


def _end_of_head(data: bytearray) -> int:
    """Where the blank line that ends a request head starts, or -1 (bare LF line ends accepted, as http.server)."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else -1


class _PlainTransport(asyncio.Transport):
    """A socket transport for plain HTTP with only what _Connection uses, built in the accept callback.

    asyncio's own path for an accepted socket (connect_accepted_socket) costs a task, futures and
    several loop iterations per connection: about 100 us, so a scrape queued behind a burst of
    3,000 connections waited 200 ms. This one costs a selector registration. TLS keeps asyncio's
    transport, whose handshake it needs.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: asyncio.Protocol):
        super().__init__()
        self._loop = loop
        self._sock = sock
        # The selector is given the descriptor, not the socket: for a socket it formats the socket's
        # repr into a KeyError on every first registration, which was most of the accept cost.
        self._fd = sock.fileno()
        self._protocol = protocol
        self._out = bytearray()
        self._closing = False
        self._eof_after_write = False
        self._closed = False
        self._reading = False
        protocol.connection_made(self)
        if not self._closing:
            loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(exc)
            return
        if data:
            self._protocol.data_received(data)
        else:
            self._stop_reading()
            if not self._protocol.eof_received():
                self.close()

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def write(self, data: bytes) -> None:
        if not self._out:
            try:
                data = data[self._sock.send(data):]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._finish(exc)
                return
            if data:
                self._loop.add_writer(self._fd, self._writable)
        self._out += data

    def _writable(self) -> None:
        try:
            del self._out[:self._sock.send(self._out)]
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(exc)
            return
        if not self._out:
            self._loop.remove_writer(self._fd)
            self._flushed()

    def _flushed(self) -> None:
        if self._eof_after_write:
            self._eof_after_write = False
            self._shutdown_write()
        if self._closing:
            self._finish(None)

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._out:
            self._eof_after_write = True
        else:
            self._shutdown_write()

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return len(self._out)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._out:
            self._finish(None)

    def abort(self) -> None:
        self._closing = True
        self._finish(None)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._sock if name == "socket" else default

    def _finish(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = self._closing = True
        self._stop_reading()
        if self._out:
            self._loop.remove_writer(self._fd)
        self._sock.close()
        # As asyncio's transports do: connection_lost never runs inside another protocol callback.
        self._loop.call_soon(self._protocol.connection_lost, exc)


class MetricsServer:
    """HTTP(S) for /metrics, / and /-/healthy on an asyncio loop; serve_in_thread() runs it.

    stop() is graceful: it stops accepting, still serves the connections the kernel had already
    accepted (the listen backlog) and the requests in flight, then closes.
    """

    def __init__(self, address: tuple[str, int], exposition: Exposition, web: WebConfig | None = None,
                 max_requests: int = DEFAULT_MAX_REQUESTS):
        web = web or WebConfig()
        self.exposition = exposition
        self.http = exposition.http
        self.tls = web.tls
        self.headers = dict(web.headers)
        self.auth = BasicAuth(web.users)
        self.max_requests = max_requests
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # Bound here, in the caller's thread, so that a port in use fails start-up at once. The backlog
        # is the largest the kernel allows (as Go's listeners): in a burst of thousands of connections,
        # a scrape's handshake must find room, not wait for a SYN retransmit (1 s, then 3 s).
        # [::] also takes IPv4, as Linux's default (and http.server's) was.
        self.socket = socket.create_server(address, family=family, backlog=socket.SOMAXCONN,
                                           dualstack_ipv6=family == socket.AF_INET6 and socket.has_dualstack_ipv6())
        self.socket.setblocking(False)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self.loop = asyncio.new_event_loop()
        self.connections: set[_Connection] = set()
        self._handshakes: set[asyncio.Task] = set()
        self._answering = 0
        self._idle: asyncio.Event | None = None
        self._warnings = _Warnings()
        # bcrypt takes tens of milliseconds on purpose: never on the loop.
        self._auth_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth")

    def serve_forever(self) -> None:
        """Run the event loop until stop(); call from the thread that will serve."""
        asyncio.set_event_loop(self.loop)
        self.loop.add_reader(self.socket, self._accept)
        self.loop.run_forever()
        self.loop.close()
        self._auth_pool.shutdown(wait=False)

    def stop(self, timeout: float) -> bool:
        """Stop accepting, then serve what the kernel had accepted and what is in flight; True if all
        of it finished within timeout seconds (the rest is cut off)."""
        finished: Future[bool] = Future()
        self.loop.call_soon_threadsafe(self._stop, time.monotonic() + timeout, finished)
        try:
            return finished.result(timeout + 2.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)

    def _stop(self, deadline: float, finished: Future[bool]) -> None:
        # One callback, so that no accept can run between the last look at the backlog and the close.
        self.loop.remove_reader(self.socket)
        # Handshakes the kernel completed before now sit in the listen backlog. Their clients have
        # sent, or are sending, a request: accept and serve them, since closing the socket with
        # them inside would reset them. Whatever connects after the close is refused.
        backlog = 0
        while time.monotonic() < deadline and self._accept_one():
            backlog += 1
        self.socket.close()
        if backlog:
            log.debug("serving %d connections from the listen backlog before exit", backlog)
        task = self.loop.create_task(self._finish(deadline))
        task.add_done_callback(lambda done: finished.set_result(done.result()))

    async def _finish(self, deadline: float) -> bool:
        self._idle = asyncio.Event()
        if self.connections or self._handshakes:
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass
        clean = not self.connections and not self._handshakes
        for task in list(self._handshakes):
            task.cancel()
        for connection in list(self.connections):
            connection.abort()
        return clean

    def forget(self, connection: _Connection) -> None:
        """A connection closed."""
        self.connections.discard(connection)
        self.release(connection)
        self._check_idle()

    def warn(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        """A warning of this kind, at most once a minute."""
        self._warnings.warn(kind, message, *args, exc_info=exc_info)

    def release(self, connection: _Connection) -> None:
        """The connection's request no longer counts against web.max_requests."""
        if connection.holds_slot:
            connection.holds_slot = False
            self._answering -= 1

    def _check_idle(self) -> None:
        if self._idle is not None and not self.connections and not self._handshakes:
            self._idle.set()

    def _accept(self) -> None:
        # A bounded batch per wake-up, so that a connection flood cannot starve the scrapes in flight.
        for _ in range(64):
            if not self._accept_one():
                return

    def _accept_one(self) -> bool:
        try:
            connection, _ = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of file descriptors: the socket stays readable, so listening on would spin.
                # Pause accepting for a moment instead; the connections wait in the backlog.
                self._warnings.warn("accept", "cannot accept connections: %s; pausing 0.1 s", exc.strerror)
                self.loop.remove_reader(self.socket)
                self.loop.call_later(0.1, self.loop.add_reader, self.socket, self._accept)
            return False
        connection.setblocking(False)
        if self.tls is None:
            _PlainTransport(self.loop, connection, _Connection(self))
            return True
        task = self.loop.create_task(self._connect(connection))
        self._handshakes.add(task)
        task.add_done_callback(self._handshake_done)
        return True

    async def _connect(self, connection: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: _Connection(self), connection, ssl=self.tls,
                                                    ssl_handshake_timeout=CLIENT_TIMEOUT_SECONDS)
        except (OSError, asyncio.TimeoutError) as exc:
            # A client that never says hello ends here after the handshake timeout, having
            # blocked nobody: every other connection is served meanwhile.
            log.debug("TLS handshake failed: %s", exc)
            self.http.refused["tls_handshake"] += 1
            connection.close()

    def _handshake_done(self, task: asyncio.Task) -> None:
        self._handshakes.discard(task)
        self._check_idle()

    def answer(self, connection: _Connection, method: str, target: str, headers: dict[str, str]) -> None:
        """Answer a complete request head (called on the loop)."""
        if self.max_requests and self._answering >= self.max_requests:
            self.http.refused["max_requests"] += 1
            self._warnings.warn("max_requests", "more than %d requests at once (web.max_requests): answering 503",
                                self.max_requests)
            connection.respond(503, b"503 too many requests at once\n", {"Retry-After": "1"}, True)
            return
        connection.holds_slot = True
        self._answering += 1
        if method not in ("GET", "HEAD"):
            connection.respond(405, b"405 method not allowed\n", {"Allow": "GET, HEAD"}, True)
            return
        if not self.auth.enabled:
            self._route(connection, method, target, headers)
            return
        checked = self.loop.run_in_executor(self._auth_pool, self.auth.check, headers.get("authorization"))

        def authorized(future: asyncio.Future) -> None:
            try:
                ok = future.result()
            except Exception:  # noqa: BLE001 (a failing check refuses, and must not end the loop)
                self._warnings.warn("auth", "basic auth check failed", exc_info=True)
                ok = False
            if ok:
                self._route(connection, method, target, headers)
            else:
                connection.respond(401, b"401 unauthorized\n",
                                   {"WWW-Authenticate": 'Basic realm="rag-analytics-exporter", charset="UTF-8"'},
                                   method == "GET")

        checked.add_done_callback(authorized)

    def _route(self, connection: _Connection, method: str, target: str, headers: dict[str, str]) -> None:
        send_body = method == "GET"
        path = target.split("?", 1)[0]
        if path == "/metrics":
            gzipped = "gzip" in headers.get("accept-encoding", "")
            extra = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4} | ({"Content-Encoding": "gzip"} if gzipped else {})
            connection.respond(200, self.exposition.body(gzipped), extra, send_body)
        elif path == "/":
            connection.respond(200, _LANDING, {"Content-Type": "text/html; charset=utf-8"}, send_body)
        elif path == "/-/healthy":
            connection.respond(200, b"OK\n", {}, send_body)
        else:
            connection.respond(404, b"404 page not found\n", {}, send_body)


def serve_in_thread(server: MetricsServer) -> threading.Thread:
    """Run the server's event loop in a background thread and return that thread."""
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread

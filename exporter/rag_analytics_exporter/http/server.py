"""The listening side: accept (plain or TLS), bound the requests in progress, check auth, call the handler.

A connection costs a coroutine, not a thread, so thousands of stalled clients cost memory only;
the auth check (bcrypt) runs in a small thread pool, off the loop; at most max_requests requests
are answered at once, and the rest get 503.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from .connection import CLIENT_TIMEOUT_SECONDS, Connection
from .request import path_of
from .response import Response, error
from .stats import HttpStats, Warnings
from .transport import PlainTransport

log = logging.getLogger(__name__)

# Requests answered at once by default, as node_exporter's --web.max-requests.
DEFAULT_MAX_REQUESTS = 40
# Connections open at once by default: half the usual soft limit of 1024 file descriptors.
DEFAULT_MAX_CONNECTIONS = 512

# (method, path without query, headers with lowercased names) -> the response; runs on the loop.
Handler = Callable[[str, str, Mapping[str, str]], Response]
# The Authorization header (or None) -> whether it passes; runs in a thread of the auth pool.
Authorizer = Callable[[str | None], bool]

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="rag-analytics-exporter", charset="UTF-8"'}


class HttpServer:
    """HTTP(S) on an asyncio loop for one handler; serve_in_thread() runs it.

    stop() is graceful: it stops accepting, closes the persistent connections that wait for a next
    request, still serves the connections the kernel had already accepted (the listen backlog) and
    the requests in flight, then closes.
    """

    def __init__(self, address: tuple[str, int], handler: Handler, *, tls: ssl.SSLContext | None = None,
                 headers: Mapping[str, str] | None = None, authorize: Authorizer | None = None,
                 max_requests: int = DEFAULT_MAX_REQUESTS, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 stats: HttpStats | None = None):
        self._handler = handler
        self._tls = tls
        self._headers = dict(headers or {})
        self._authorize = authorize
        self._max_requests = max_requests
        self._max_connections = max_connections
        self.stats = stats or HttpStats()
        self.stats.max_connections = max_connections
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
        # Dicts for their order: the oldest first, which is the first to close when max_connections are open.
        self._connections: dict[Connection, None] = {}
        self._waiting: dict[Connection, None] = {}  # idle between requests, in the order they became so
        self._handshakes: set[asyncio.Task] = set()
        # Connections whose request holds one of max_requests, from its complete head until its
        # response is all handed to the kernel: answers on the loop take no time, so what the bound
        # counts is requests waiting for the auth check and responses a slow client has not taken yet.
        self._answering: set[Connection] = set()
        self._idle: asyncio.Event | None = None
        self.stopping = False
        self._warnings = Warnings()
        # bcrypt takes tens of milliseconds on purpose: never on the loop.
        self._auth_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth")

    def reconfigure(self, *, tls: ssl.SSLContext | None, headers: Mapping[str, str],
                    authorize: Authorizer | None) -> None:
        """Serve what comes next with this TLS context, these headers and this authorization. Call it on
        the loop's thread (loop.call_soon_threadsafe).

        A connection accepted with another TLS context (or without TLS, when TLS is now on) is closed:
        at once when no request is in progress, else after its response.
        """
        self._tls, self._headers, self._authorize = tls, dict(headers), authorize
        for connection in list(self._connections):
            if connection.tls is not tls:
                connection.retire()

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
        # From now on every response says Connection: close, and a persistent connection waiting
        # for its next request is closed now rather than at its idle timeout.
        self.stopping = True
        for connection in list(self._connections):
            connection.close_if_idle()
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
        if self._connections or self._handshakes:
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass
        clean = not self._connections and not self._handshakes
        for task in list(self._handshakes):
            task.cancel()
        for connection in list(self._connections):
            connection.abort()
        return clean

    # The Host protocol, for the connections.

    def opened(self, connection: Connection) -> None:
        self._connections[connection] = None
        self._count()
        if connection.tls is not self._tls:  # its handshake began before a reload
            connection.retire()

    def sent(self, connection: Connection) -> None:
        self._answering.discard(connection)

    def closed(self, connection: Connection) -> None:
        self._connections.pop(connection, None)
        self._waiting.pop(connection, None)
        self._answering.discard(connection)
        self._count()
        self._check_idle()

    def idle(self, connection: Connection) -> None:
        self._waiting[connection] = None

    def busy(self, connection: Connection) -> None:
        self._waiting.pop(connection, None)

    def warn(self, kind: str, message: str, *args: object, exc_info: bool = False) -> None:
        self._warnings.warn(kind, message, *args, exc_info=exc_info)

    def request(self, connection: Connection, method: str, target: str, headers: Mapping[str, str]) -> None:
        if self._max_requests and len(self._answering) >= self._max_requests:
            self.stats.refused["max_requests"] += 1
            self.warn("max_requests", "more than %d requests at once (web.max_requests): answering 503",
                      self._max_requests)
            connection.respond(error(503, {"Retry-After": "1"}), method != "HEAD")
            return
        self._answering.add(connection)
        if self._authorize is None:
            self._answer(connection, method, target, headers)
            return
        checked = self.loop.run_in_executor(self._auth_pool, self._authorize, headers.get("authorization"))

        def authorized(future: asyncio.Future) -> None:
            try:
                ok = future.result()
            except Exception:  # noqa: BLE001 (a failing check refuses, and must not end the loop)
                self.warn("auth", "basic auth check failed", exc_info=True)
                ok = False
            if ok:
                self._answer(connection, method, target, headers)
            else:
                connection.respond(error(401, _CHALLENGE), method != "HEAD")

        checked.add_done_callback(authorized)

    def _answer(self, connection: Connection, method: str, target: str, headers: Mapping[str, str]) -> None:
        connection.respond(self._handler(method, path_of(target), headers), method != "HEAD")

    def _check_idle(self) -> None:
        if self._idle is not None and not self._connections and not self._handshakes:
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
                self.warn("accept", "cannot accept connections: %s; pausing 0.1 s", exc.strerror)
                self.loop.remove_reader(self.socket)
                self.loop.call_later(0.1, self.loop.add_reader, self.socket, self._accept)
            return False
        connection.setblocking(False)
        if len(self._connections) + len(self._handshakes) >= self._max_connections and not self._make_room():
            self.stats.refused["max_connections"] += 1
            self.warn("max_connections", "%d connections open (web.max_connections), each with a request in "
                      "progress: closing new connections", self._max_connections)
            connection.close()
            return True
        if self._tls is None:
            PlainTransport(self.loop, connection, Connection(self, self._headers, None))
            return True
        task = self.loop.create_task(self._connect(connection, self._tls))
        self._handshakes.add(task)
        task.add_done_callback(self._handshake_done)
        self._count()
        return True

    def _make_room(self) -> bool:
        """Close one connection for a new one: the longest idle between requests, else the oldest that has
        not sent a complete request head yet (a stalled client, most likely). False if every one is busy."""
        victim, state = next(iter(self._waiting), None), "idle"
        if victim is None:
            victim = next((c for c in self._connections if c.reading), None)
            state = "reading"
        if victim is None:
            return False
        # Out of the count now: its descriptor is released now, its connection_lost comes later.
        self.closed(victim)
        victim.abort()
        self.stats.evicted[state] += 1
        self.warn(f"evict_{state}", "%d connections open (web.max_connections): closing the oldest %s one for a "
                  "new one", self._max_connections, state)
        return True

    def _count(self) -> None:
        self.stats.open_connections = len(self._connections) + len(self._handshakes)

    async def _connect(self, connection: socket.socket, accepted: ssl.SSLContext) -> None:
        # A reload may have run since the accept: a new certificate serves the handshake; TLS turned off cannot
        # (the client says hello in TLS), so the accepted context does and opened() retires the connection.
        tls = self._tls or accepted
        try:
            await self.loop.connect_accepted_socket(lambda: Connection(self, self._headers, tls), connection,
                                                    ssl=tls, ssl_handshake_timeout=CLIENT_TIMEOUT_SECONDS)
        except (OSError, asyncio.TimeoutError) as exc:
            # A client that never says hello ends here after the handshake timeout, having
            # blocked nobody: every other connection is served meanwhile.
            log.debug("TLS handshake failed: %s", exc)
            self.stats.refused["tls_handshake"] += 1
            connection.close()

    def _handshake_done(self, task: asyncio.Task) -> None:
        self._handshakes.discard(task)
        self._count()
        self._check_idle()


def serve_in_thread(server: HttpServer) -> threading.Thread:
    """Run the server's event loop in a background thread and return that thread."""
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread

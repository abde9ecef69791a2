"""A running exporter assembled from its parts: refresh schedule, snapshot, HTTP server; and its stop."""

from __future__ import annotations

import logging
import resource
import select
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler

from .config import Config, ConfigError
from .db import Database
from .exposition import Exposition
from .http.server import HttpServer, serve_in_thread
from .http.stats import HttpStats
from .refresh import Refresher, start_scheduler
from .routes import metrics_server
from .webconfig import BasicAuth, WebConfig, load_web_config, refusal

log = logging.getLogger(__name__)

# How long stop() may take: connections the kernel already accepted and scrapes in flight get
# this long to finish, and a refresh in flight to be cancelled. The README promises exit within 5 s.
STOP_TIMEOUT_SECONDS = 4.0
# File descriptors kept for what is not a client connection: the database, logs, the loop's own, files
# opened on SIGHUP, and connections closed to make room whose descriptor the loop releases a moment later.
FD_RESERVE = 128


@dataclass
class Running:
    """A started exporter: stop() ends it cleanly (in-flight scrapes finish, the connection closes)."""

    server: HttpServer
    scheduler: BackgroundScheduler
    database: Database
    refresher: Refresher
    web: WebConfig  # the web config in force

    @property
    def port(self) -> int:
        """The port the server listens on (useful when it was asked for port 0)."""
        return self.server.server_address[1]

    def use_web_config(self, web: WebConfig) -> None:
        """Serve with this web config from now on: connections accepted after this get its TLS context,
        requests its headers and users. Connections opened with another TLS context, or without TLS, are
        closed (at once when idle, else after their response), and their clients reconnect."""
        auth = BasicAuth(web.users)  # hashes a dummy password: slow on purpose, so not on the loop
        self.web = web

        self.server.loop.call_soon_threadsafe(lambda: self.server.reconfigure(
            tls=web.tls, headers=web.headers, authorize=auth.check if auth.enabled else None))

    def reload_web_config(self, path: str) -> None:
        """Apply the web config file as it is now, unless it does not validate or is blank and lowers security."""
        try:
            web = load_web_config(path)
        except ConfigError as exc:
            reason: str | None = str(exc)
        else:
            reason = refusal(self.web, web)
            if reason is None:
                self.use_web_config(web)
                log.info("SIGHUP: web config %s reloaded (%s, %d basic auth users)", path,
                         "TLS" if web.tls else "plain HTTP", len(web.users))
                return
        log.error("SIGHUP: web config %s not reloaded, the previous one stays in force: %s", path, reason)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Stop serving (scrapes in flight finish), cancel a refresh in flight, close the connection.

        Returns False when a refresh was still stuck at the deadline (say, on a dead network
        path, where even the cancel request cannot reach the server); the connection is then
        left to the process exit rather than closed under the refresh's feet.
        """
        deadline = time.monotonic() + timeout
        if not self.server.stop(timeout):
            log.warning("connections still open at shutdown after %gs; closing them", timeout)
        self.scheduler.shutdown(wait=False)
        self.database.cancel()
        if not self.refresher.wait_idle(max(0.0, deadline - time.monotonic())):
            log.warning("a refresh is still running at shutdown; exiting without waiting for it")
            return False
        self.database.close()
        return True


def start_exporter(config: Config, password: str | None, web: WebConfig | None = None,
                   clock: Callable[[], float] = time.time) -> Running:
    """Start the refresh schedule and the HTTP server; returns once both run.

    clock: Unix seconds, the time the refreshes and the scrapes take today's UTC date and the data's age from
    (an embedding program, or a test, that serves rows as of another moment than the wall clock's)."""
    database = Database(config.dsn, password=password, application_name=config.application_name,
                        connect_timeout=config.connect_timeout, statement_timeout=config.statement_timeout,
                        lock_timeout=config.lock_timeout)
    refresher = Refresher(database, config, clock=clock)
    stats = HttpStats()
    exposition = Exposition(lambda: refresher.snapshot, clock=clock, live=[stats])
    refresher.on_publish(exposition.warm)
    server = metrics_server((config.listen_host, config.listen_port), exposition, web, config.max_requests, stats,
                            connection_limit(config.max_connections, raise_fd_limit()))
    serve_in_thread(server)
    scheduler = start_scheduler(refresher, config.refresh_interval)
    return Running(server=server, scheduler=scheduler, database=database, refresher=refresher,
                   web=web or WebConfig())


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard one, as Go programs do at start; the soft limit now.

    The soft limit is often 1024 (shells, systemd units), and each client connection takes a descriptor.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a hard limit of "unlimited" is refused on Linux
            log.debug("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
    return soft


def connection_limit(configured: int, fd_limit: int) -> int:
    """web.max_connections, lowered to what the open files limit leaves room for (with a warning)."""
    room = max(fd_limit - FD_RESERVE, fd_limit // 2)
    if configured > room:
        log.warning("web.max_connections is %d, but the open files limit (%d) leaves room for %d client "
                    "connections: serving at most %d (raise the limit: ulimit -n, LimitNOFILE=)",
                    configured, fd_limit, room, room)
        return room
    return configured


class Signals:
    """What the signals a supervisor sends do: TERM, INT and QUIT stop gracefully, HUP reloads,
    USR1 and USR2 are logged and ignored. (Python's defaults would kill the process on all but INT.)

    Install it (construct it) before anything starts, so that no signal finds the default action.
    The handlers only note the signal: Python runs a handler in the main thread between any two
    bytecodes, inside whatever lock that thread holds (an Event's, logging's), so a handler that
    took a lock could wait on itself. It once did: a storm of SIGHUPs deadlocked the exporter in
    Event.set and SIGTERM was then ignored. The C-level handler also writes the signal's number to
    a pipe (signal.set_wakeup_fd), which wakes wait() whichever thread the kernel interrupted.
    """

    STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    RELOAD = signal.SIGHUP
    IGNORED = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self) -> None:
        self._received: deque[int] = deque()  # append and popleft are single C calls: safe from a handler
        self._wakeup, self._wakeup_in = socket.socketpair()
        for end in (self._wakeup, self._wakeup_in):
            end.setblocking(False)
        # A full pipe drops the byte, not the signal: the deque holds it, and the pipe holds one byte already.
        signal.set_wakeup_fd(self._wakeup_in.fileno(), warn_on_full_buffer=False)
        for sig in (*self.STOP, self.RELOAD, *self.IGNORED):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self._received.append(signum)

    def wait(self, reload: Callable[[], None] | None = None) -> signal.Signals:
        """Block until a stop signal (returned); run reload() on SIGHUP meanwhile.

        SIGHUPs that arrive while a reload runs are served by one more reload, not one each: a
        reload reads the file as it is then, so a second one in a row would only repeat it.
        """
        while True:
            select.select([self._wakeup], [], [])
            try:
                while self._wakeup.recv(4096):
                    pass
            except BlockingIOError:
                pass
            received = []
            while self._received:
                received.append(signal.Signals(self._received.popleft()))
            stop = next((sig for sig in received if sig in self.STOP), None)
            if stop is not None:
                log.info("received %s", stop.name)
                return stop
            for sig in dict.fromkeys(sig for sig in received if sig in self.IGNORED):
                log.info("received %s: ignored (SIGHUP re-reads the web config file; SIGTERM stops)", sig.name)
            if self.RELOAD not in received:
                continue
            if reload is None:
                log.info("received SIGHUP: ignored (no reload here; SIGTERM stops)")
                continue
            log.info("received SIGHUP: reloading")
            try:
                reload()
            except Exception:  # a failed reload must leave the exporter serving as it was
                log.exception("SIGHUP: reload failed; carrying on as before")


def wait_for_signal() -> None:
    """Block until SIGTERM, SIGINT or SIGQUIT; other supervisor signals are logged and ignored."""
    Signals().wait()



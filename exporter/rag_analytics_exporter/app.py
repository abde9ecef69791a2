"""A running exporter assembled from its parts: refresh schedule, snapshot, HTTP server; and its stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler

from .config import Config
from .db import Database
from .exposition import Exposition
from .http.server import HttpServer, serve_in_thread
from .http.stats import HttpStats
from .refresh import Refresher, start_scheduler
from .routes import metrics_server
from .webconfig import BasicAuth, WebConfig

log = logging.getLogger(__name__)

# How long stop() may take: connections the kernel already accepted and scrapes in flight get
# this long to finish, and a refresh in flight to be cancelled. The README promises exit within 5 s.
STOP_TIMEOUT_SECONDS = 4.0


@dataclass
class Running:
    """A started exporter: stop() ends it cleanly (in-flight scrapes finish, the connection closes)."""

    server: HttpServer
    scheduler: BackgroundScheduler
    database: Database
    refresher: Refresher

    @property
    def port(self) -> int:
        """The port the server listens on (useful when it was asked for port 0)."""
        return self.server.server_address[1]

    def use_web_config(self, web: WebConfig) -> None:
        """Serve with this web config from now on: connections accepted after this get its TLS context,
        requests its headers and users. Connections already open keep the TLS they shook hands with."""
        auth = BasicAuth(web.users)  # hashes a dummy password: slow on purpose, so not on the loop

        self.server.loop.call_soon_threadsafe(lambda: self.server.reconfigure(
            tls=web.tls, headers=web.headers, authorize=auth.check if auth.enabled else None))

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


def start_exporter(config: Config, password: str | None, web: WebConfig | None = None) -> Running:
    """Start the refresh schedule and the HTTP server; returns once both run."""
    database = Database(config.dsn, password=password, application_name=config.application_name,
                        connect_timeout=config.connect_timeout, statement_timeout=config.statement_timeout,
                        lock_timeout=config.lock_timeout)
    refresher = Refresher(database, config)
    stats = HttpStats()
    exposition = Exposition(lambda: refresher.snapshot, live=[stats])
    refresher.on_publish(exposition.warm)
    server = metrics_server((config.listen_host, config.listen_port), exposition, web, config.max_requests, stats)
    serve_in_thread(server)
    scheduler = start_scheduler(refresher, config.refresh_interval)
    return Running(server=server, scheduler=scheduler, database=database, refresher=refresher)


class Signals:
    """What the signals a supervisor sends do: TERM, INT and QUIT stop gracefully, HUP reloads,
    USR1 and USR2 are logged and ignored. (Python's defaults would kill the process on all but INT.)

    Install it (construct it) before anything starts, so that no signal finds the default action.
    """

    STOP = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    RELOAD = signal.SIGHUP
    IGNORED = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self) -> None:
        self._received: deque[int] = deque()
        self._arrived = threading.Event()
        for sig in (*self.STOP, self.RELOAD, *self.IGNORED):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        # Only note it: the handler interrupts the main thread anywhere, even inside logging's lock.
        self._received.append(signum)
        self._arrived.set()

    def wait(self, reload: Callable[[], None] | None = None) -> signal.Signals:
        """Block until a stop signal (returned); run reload() on each SIGHUP meanwhile."""
        while True:
            # Never an untimed wait: the kernel may deliver the signal to another thread, and
            # Python runs handlers only when the main thread wakes up. An untimed lock wait
            # may never wake (seen: 1 SIGTERM in 4 lost); waking every 0.2s bounds the delay.
            self._arrived.wait(0.2)
            self._arrived.clear()
            while self._received:
                received = signal.Signals(self._received.popleft())
                if received in self.STOP:
                    log.info("received %s", received.name)
                    return received
                if received == self.RELOAD and reload is not None:
                    log.info("received SIGHUP: reloading")
                    try:
                        reload()
                    except Exception:  # a failed reload must leave the exporter serving as it was
                        log.exception("SIGHUP: reload failed; carrying on as before")
                else:
                    log.info("received %s: ignored (SIGHUP re-reads the web config file; SIGTERM stops)",
                             received.name)


def wait_for_signal() -> None:
    """Block until SIGTERM, SIGINT or SIGQUIT; other supervisor signals are logged and ignored."""
    Signals().wait()



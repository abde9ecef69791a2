"""A running exporter assembled from its parts: refresh schedule, snapshot, HTTP server; and its stop."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler

from .config import Config
from .db import Database
from .exposition import Exposition
from .http.server import HttpServer, serve_in_thread
from .http.stats import HttpStats
from .refresh import Refresher, start_scheduler
from .routes import metrics_server
from .webconfig import WebConfig

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


def wait_for_signal() -> None:
    """Block until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Never an untimed wait: the kernel may deliver the signal to another thread, and
    # Python runs handlers only when the main thread wakes up. An untimed lock wait
    # may never wake (seen: 1 SIGTERM in 4 lost); waking every 0.2s bounds the delay.
    while not stop.wait(0.2):
        pass



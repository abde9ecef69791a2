"""The refresh job: read the tables, build a new snapshot, swap it in; scheduled by APScheduler."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from .config import Config
from .db import DAILY_TABLES, Database, DatabaseUnavailable, QueryFailed
from .snapshot import DAILY_BUILDERS, Snapshot, build_chunks, empty_snapshot, frozen_mapping

log = logging.getLogger(__name__)


class Refresher:
    """Owns the current snapshot; each refresh() replaces it with a new one in a single assignment."""

    def __init__(self, database: Database, config: Config, clock: Callable[[], float] = time.time):
        self._db = database
        self._config = config
        self._clock = clock
        self._snapshot = empty_snapshot(config)
        self._skipped = 0
        self._lock = threading.Lock()  # guards _skipped only; readers never take it
        self._last_chunk_read: float | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._listeners: list[Callable[[], None]] = []

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot: a plain attribute read, so a scrape never waits on a refresh."""
        return self._snapshot

    def count_skip(self) -> None:
        """Record a scheduled run that was dropped because the previous one was still going."""
        with self._lock:
            self._skipped += 1
        log.warning("refresh skipped: the previous refresh is still running")

    def on_publish(self, listener: Callable[[], None]) -> None:
        """Call listener (in the refresh thread) after each new snapshot is published."""
        self._listeners.append(listener)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to timeout seconds for a refresh in progress to end; True if none is running."""
        return self._idle.wait(timeout)

    def refresh(self) -> Snapshot:
        """Read the database once and publish the resulting snapshot; never raises for database trouble."""
        self._idle.clear()
        try:
            return self._refresh()
        finally:
            self._idle.set()

    def _refresh(self) -> Snapshot:
        started = self._clock()
        previous = self._snapshot
        today = datetime.fromtimestamp(started, timezone.utc).date()
        since = today - timedelta(days=self._config.lookback_days + 1)
        # Slack of a tenth of the interval keeps a chunk read due on the tick it is meant for.
        chunks_due = (self._last_chunk_read is None or started - self._last_chunk_read
                      >= self._config.chunk_refresh_interval - self._config.refresh_interval / 10)
        sections = dict(previous.sections)
        errors = dict(previous.health.errors)
        table_up = dict(previous.health.table_up)
        try:
            reads, chunk_read = self._db.read(today, since, with_chunks=chunks_due,
                                              top_chunks=self._config.top_chunks)
        except DatabaseUnavailable as exc:
            log.error("refresh failed: database unavailable: %s", exc)
            errors["connection"] += 1
            table_up = {table: False for table in (*DAILY_TABLES, "chunk_retrieval_stats")}
            ok = False
        else:
            ok = True
            for table, read in reads.items():
                if isinstance(read, QueryFailed):
                    log.error("refresh: reading %s failed: %s", table, read.reason)
                    errors["query"] += 1
                    table_up[table] = ok = False
                    continue
                table_up[table] = True
                sections[table] = DAILY_BUILDERS[table](read, started, today, self._config)
            if isinstance(chunk_read, QueryFailed):
                log.error("refresh: reading chunk_retrieval_stats failed: %s", chunk_read.reason)
                errors["query"] += 1
                table_up["chunk_retrieval_stats"] = ok = False
            elif chunk_read is not None:
                table_up["chunk_retrieval_stats"] = True
                sections["chunk_retrieval_stats"] = build_chunks(chunk_read, started)
                self._last_chunk_read = started
            elif "chunk_retrieval_stats" in sections and table_up.get("chunk_retrieval_stats"):
                # Not due: the database answered and the last chunk read stands.
                sections["chunk_retrieval_stats"] = replace(sections["chunk_retrieval_stats"], confirmed_at=started)
        finished = self._clock()
        with self._lock:
            skipped = self._skipped
        health = replace(
            previous.health,
            up=ok,
            last_attempt=finished,
            last_success=finished if ok else previous.health.last_success,
            duration_seconds=finished - started,
            refreshes=previous.health.refreshes + 1,
            errors=frozen_mapping(errors),
            skipped=skipped,
            table_up=frozen_mapping(table_up),
        )
        self._snapshot = Snapshot(sections=frozen_mapping(sections), health=health,
                                  refresh_interval=previous.refresh_interval, max_data_age=previous.max_data_age)
        if ok:
            log.debug("refresh ok in %.3fs", finished - started)
        for listener in self._listeners:
            listener()
        return self._snapshot


def start_scheduler(refresher: Refresher, interval: float) -> BackgroundScheduler:
    """Run refresher.refresh now and every interval seconds, never two at once."""
    scheduler = BackgroundScheduler(timezone=timezone.utc)

    def on_skip(event: JobExecutionEvent) -> None:
        refresher.count_skip()

    scheduler.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES)
    scheduler.add_job(
        refresher.refresh, "interval", seconds=interval, id="refresh",
        next_run_time=datetime.now(timezone.utc),
        max_instances=1, coalesce=True,
        # A run that starts late is still worth doing; dropping it would only age the data.
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler

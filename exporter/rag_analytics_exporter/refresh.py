"""The refresh job: read the tables, build a new snapshot, swap it in; scheduled by APScheduler."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from .builders import DAILY_BUILDERS, build_chunks
from .config import Config
from .counters import Correction, advance
from .db import DAILY_TABLES, ChunkRead, Database, DatabaseRead, DatabaseUnavailable, QueryFailed, TableRead
from .dberrors import first_line
from .snapshot import Health, Section, Snapshot, empty_snapshot, frozen_mapping
from .tables import CHUNK_RETRIEVAL_STATS, LATENCY_METRICS, TOTAL_COMPONENT

log = logging.getLogger(__name__)

# A running total that went down is logged at most this often per table; the amounts are all counted.
CORRECTION_LOG_SECONDS = 600.0


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
        # Whether the last chunk read succeeded: between reads, reaching the database re-confirms
        # its data, even after an outage set table_up to 0 (the table itself was not read since).
        self._chunk_read_ok = False
        self._failed_connects = 0  # refreshes in a row that could not reach the database
        self._failed_tables: set[str] = set()  # tables whose last read failed on a reachable database
        self._total_missing = False  # logged when it changes, not at every refresh
        self._idle = threading.Event()
        self._idle.set()
        self._listeners: list[Callable[[], None]] = []
        self._correction_logged: dict[str, float] = {}  # table -> when a correction was last logged
        self._corrections_unlogged: dict[str, int] = {}  # table -> corrections since that line
        self._null_updated_logged: set[str] = set()  # tables whose NULL updated_at was logged

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
        draft = _Draft(dict(previous.sections), dict(previous.health.errors), dict(previous.health.table_up),
                       clock_offset=previous.health.clock_offset_seconds)
        counters = previous.counters
        try:
            read = self._read(started, today)
        except DatabaseUnavailable as exc:
            self._record_outage(exc, draft)
        else:
            draft.clock_offset = read.clock_offset_seconds
            fresh = self._record_reads(read.tables, started, today, draft)
            self._record_chunks(read.chunks, started, draft)
            running = {table: section.running for table, section in fresh.items()}
            counters, corrections = advance(counters, running, today, started)
            self._log_corrections(corrections, started)
        finished = self._clock()
        self._snapshot = Snapshot(sections=frozen_mapping(draft.sections),
                                  health=self._health(previous.health, draft, started, finished),
                                  refresh_interval=self._config.refresh_interval,
                                  max_data_age=self._config.max_data_age, counters=counters,
                                  chunk_refresh_interval=self._config.chunk_refresh_interval)
        if draft.ok:
            log.debug("refresh ok in %.3fs", finished - started)
        for listener in self._listeners:
            listener()
        return self._snapshot

    def _read(self, started: float, today: date) -> DatabaseRead:
        """One read of the database: the daily tables over the days they need, the chunk table when due."""
        since = today - timedelta(days=self._config.days_read)
        # Slack of a tenth of the interval keeps a chunk read due on the tick it is meant for.
        chunks_due = (self._last_chunk_read is None or started - self._last_chunk_read
                      >= self._config.chunk_refresh_interval - self._config.refresh_interval / 10)
        return self._db.read(today, since, with_chunks=chunks_due, top_chunks=self._config.top_chunks,
                             now=datetime.fromtimestamp(started, timezone.utc))

    def _record_outage(self, exc: DatabaseUnavailable, draft: _Draft) -> None:
        """Nothing was read: every table is down and the refresh failed, with kind="connection"."""
        log.error("refresh failed: database unavailable: %s", exc)
        draft.errors["connection"] += 1
        self._failed_connects += 1
        draft.table_up = {table: False for table in (*DAILY_TABLES, CHUNK_RETRIEVAL_STATS.name)}
        draft.ok = False

    def _record_reads(self, reads: dict[str, TableRead | QueryFailed], started: float, today: date,
                      draft: _Draft) -> dict[str, Section[Any]]:
        """Build and store each daily table's section; a table that failed keeps its previous one.
        Returns the sections built by this read."""
        if self._failed_connects:
            log.info("database reachable again after %d failed refreshes", self._failed_connects)
            self._failed_connects = 0
        fresh: dict[str, Section[Any]] = {}
        for table, read in reads.items():
            section = _build(table, read, DAILY_BUILDERS[table], started, today, self._config)
            recorded = self._record(table, section, draft)
            draft.ok &= recorded
            if recorded:
                fresh[table] = draft.sections[table]
                self._log_null_updated_at(draft.sections[table])
                if table == LATENCY_METRICS.name:
                    self._log_total(draft.sections[table])
        return fresh

    def _log_corrections(self, corrections: list[Correction], now: float) -> None:
        """One line per table at most every CORRECTION_LOG_SECONDS; rag_exporter_source_corrections_total
        has every amount."""
        for correction in corrections:
            table = correction.table
            self._corrections_unlogged[table] = self._corrections_unlogged.get(table, 0) + 1
            if now - self._correction_logged.get(table, float("-inf")) < CORRECTION_LOG_SECONDS:
                continue
            log.warning("%s: a running total went down, so its counter held: %s of %s%s by %g (%d corrections in "
                        "this table since the last such line)", table, correction.counter, correction.day,
                        f" {correction.key!r}" if correction.key else "", correction.amount,
                        self._corrections_unlogged[table])
            self._correction_logged[table] = now
            self._corrections_unlogged[table] = 0

    def _log_null_updated_at(self, section: Section[Any]) -> None:
        """Once per table: rows without updated_at leave the table's freshness unknowable."""
        nulls = section.updated_at_unusable.get("null", 0)
        if nulls and section.table not in self._null_updated_logged:
            self._null_updated_logged.add(section.table)
            log.warning("%s: %d rows have no updated_at; their counts are served, but the table's freshness cannot "
                        "be judged from them (rag_table_updated_at_unusable_rows)", section.table, nulls)

    def _log_total(self, section: Section[Any]) -> None:
        """Say once when the newest day of latency_metrics lacks the whole request's component, and once when
        it is back: the overview, RagTrafficDrop and the inhibition read nothing else."""
        components = {c.component for c in section.data.components}
        missing = bool(components) and TOTAL_COMPONENT not in components
        if missing and not self._total_missing:
            log.warning("latency_metrics has no component=%r on %s (it has %s): the overview's stats and "
                        "RagTrafficDrop read that component; name the whole request's row %r (docs/tables.md)",
                        TOTAL_COMPONENT, section.newest_date, ", ".join(sorted(components)), TOTAL_COMPONENT)
        elif self._total_missing and not missing:
            log.info("latency_metrics has a component=%r again", TOTAL_COMPONENT)
        self._total_missing = missing

    def _record_chunks(self, read: ChunkRead | QueryFailed | None, started: float, draft: _Draft) -> None:
        """The chunk table's outcome: read this time, or not due (None) and its last read stands."""
        table = CHUNK_RETRIEVAL_STATS.name
        if read is not None:
            self._chunk_read_ok = self._record(table, _build(table, read, build_chunks, started), draft)
            draft.ok &= self._chunk_read_ok
            if self._chunk_read_ok:
                self._last_chunk_read = started
        elif table in draft.sections and self._chunk_read_ok:
            # Not due: the database answered and the last chunk read stands.
            draft.table_up[table] = True
            draft.sections[table] = replace(draft.sections[table], confirmed_at=started)

    def _health(self, previous: Health, draft: _Draft, started: float, finished: float) -> Health:
        """The previous health carried forward by this refresh's outcome."""
        with self._lock:
            skipped = self._skipped
        return replace(
            previous,
            up=draft.ok,
            last_attempt=finished,
            last_success=finished if draft.ok else previous.last_success,
            duration_seconds=finished - started,
            refreshes=previous.refreshes + 1,
            errors=frozen_mapping(draft.errors),
            skipped=skipped,
            table_up=frozen_mapping(draft.table_up),
            clock_offset_seconds=draft.clock_offset,
        )

    def _record(self, table: str, result: Section[Any] | QueryFailed, draft: _Draft) -> bool:
        """Store one table's outcome; True when it was read. A failure counts as kind="query"."""
        if isinstance(result, QueryFailed):
            log.error("refresh: reading %s failed: %s", table, result.reason)
            draft.errors["query"] += 1
            draft.table_up[table] = False
            self._failed_tables.add(table)
            return False
        if table in self._failed_tables:
            self._failed_tables.discard(table)
            log.info("refresh: reading %s works again", table)
        draft.table_up[table] = True
        draft.sections[table] = result
        return True


@dataclass
class _Draft:
    """The next snapshot's parts while one refresh fills them in, starting from the previous snapshot's."""

    sections: dict[str, Section[Any]]
    errors: dict[str, int]
    table_up: dict[str, bool]
    ok: bool = True  # every table tried was read
    clock_offset: float | None = None


def _build(table: str, read: Any, build: Callable[..., Section[Any]], *args: Any) -> Section[Any] | QueryFailed:
    """The table's section, or a QueryFailed when the read failed or its rows broke the builder."""
    if isinstance(read, QueryFailed):
        return read
    try:
        return build(read, *args)
    except Exception as exc:  # a builder bug must fail its table, not freeze every health gauge
        log.exception("refresh: building %s from its rows failed", table)
        return QueryFailed(table, first_line(exc))


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

"""A live ETL for the demo and the end-to-end tests: today's rows upserted every few seconds, as a real one does.

The traffic itself is simulated by traffic.py; this module turns a day's running totals into the
tables' rows, reads back what an earlier writer left, and writes on a schedule over one connection.

Time can be compressed: with factor K, each real second adds K simulated seconds of traffic, so that
rules whose windows and `for:` are divided by K see what they would see in production. The simulated
clock shapes the traffic only; rows are written for the real UTC day, and the counts start again when
the real date changes, as the ETL's first write of a new day does.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

import numpy as np
import psycopg2
import psycopg2.extensions

from . import tables
from .seed import COMPONENTS, COPY_COLUMNS, REQUESTS_PER_DAY, latency_row
from .traffic import Day, Incident, Model, Pattern, Stage, simulate

log = logging.getLogger(__name__)

TOTAL_SIGMA = 0.45  # log-normal spread of a whole request's time, for the total's percentiles


def rows(day: Day, updated: datetime) -> dict[str, list[tuple]]:
    """The day's rows per table, in seed.COPY_COLUMNS order (updated_at last)."""
    latency = [latency_row(day.day, name, stage.requests, stage.errors, stage.mean_ms, sigma, updated)
               for name, stage in day.stages.items()
               for sigma in [COMPONENTS[name][1] if name in COMPONENTS else TOTAL_SIGMA]]
    tokens = [(day.day, name, m.calls, m.prompt, m.completion, m.prompt + m.completion, round(m.cost_usd, 6),
               updated) for name, m in day.models.items()]
    patterns = [(day.day, name, p.frequency, p.time_ms / p.frequency if p.frequency else None, p.feedback,
                 p.positive, updated) for name, p in day.patterns.items()]
    return {
        "latency_metrics": latency,
        "token_usage_daily": tokens,
        "citation_daily": [(day.day, sum(day.citations), *day.citations, updated)],
        "feedback_daily": [(day.day, day.positive, day.negative, updated)],
        "feedback_tags_daily": [(day.day, name, p, n, updated) for name, (p, n) in day.tags.items()],
        "follow_up_patterns_daily": patterns,
    }


# One upsert per table: the ETL's write replaces today's row with the new running totals.
_KEYS = {t.name: t.key for t in tables.DAILY}


def _upsert_sql(table: str) -> str:
    columns = COPY_COLUMNS[table]
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in _KEYS[table])
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({', '.join(_KEYS[table])}) DO UPDATE SET {updates}")


_LOAD_SQL = {
    "latency_metrics": "SELECT component, request_count, error_count, avg_time_ms FROM latency_metrics "
                       "WHERE date = %s",
    "token_usage_daily": "SELECT model_name, request_count, prompt_tokens, completion_tokens, estimated_cost_usd "
                         "FROM token_usage_daily WHERE date = %s",
    "citation_daily": "SELECT zero_citations, one_citation, two_citations, three_plus_citations "
                      "FROM citation_daily WHERE date = %s",
    "feedback_daily": "SELECT positive_count, negative_count FROM feedback_daily WHERE date = %s",
    "feedback_tags_daily": "SELECT tag, positive_count, negative_count FROM feedback_tags_daily WHERE date = %s",
    "follow_up_patterns_daily": "SELECT pattern, frequency, avg_response_time_ms, feedback_count, "
                                "positive_feedback_count FROM follow_up_patterns_daily WHERE date = %s",
}


def load_day(cur: psycopg2.extensions.cursor, day: date) -> Day:
    """The totals already written for `day` (the seed's partial day, or an earlier writer's)."""
    totals = Day(day)
    cur.execute(_LOAD_SQL["latency_metrics"], (day,))
    for component, requests, errors, mean in cur.fetchall():
        totals.stages[component] = Stage(requests, errors, (mean or 0.0) * requests)
    cur.execute(_LOAD_SQL["token_usage_daily"], (day,))
    for name, calls, prompt, completion, cost in cur.fetchall():
        totals.models[name] = Model(calls, prompt, completion, float(cost))
    cur.execute(_LOAD_SQL["citation_daily"], (day,))
    for row in cur.fetchall():
        totals.citations = list(row)
    cur.execute(_LOAD_SQL["feedback_daily"], (day,))
    for positive, negative in cur.fetchall():
        totals.positive, totals.negative = positive, negative
    cur.execute(_LOAD_SQL["feedback_tags_daily"], (day,))
    for tag, positive, negative in cur.fetchall():
        totals.tags[tag] = [positive, negative]
    cur.execute(_LOAD_SQL["follow_up_patterns_daily"], (day,))
    for name, frequency, mean, with_feedback, positive in cur.fetchall():
        totals.patterns[name] = Pattern(frequency, (mean or 0.0) * frequency, with_feedback, positive)
    return totals


# A weekday afternoon, for a demo or a test whose pages must not depend on the hour it runs: at night the
# demo's feedback was 36 to 53 events a 30m window, around RagNegativeFeedbackHigh's gate of 50, and its page
# came and went; at 03:00 on a Sunday two writes brought 92 search requests.
BUSY_AFTERNOON = datetime(2026, 12, 9, 14, 0, tzinfo=timezone.utc)  # a Wednesday


class SimulatedClock:
    """Simulated time running `factor` times as fast as the real clock, from a real moment on."""

    def __init__(self, factor: float, real_start: float, simulated_start: float | None = None):
        self.factor = factor
        self.real_start = real_start
        self.simulated_start = real_start if simulated_start is None else simulated_start

    def at(self, real: float) -> datetime:
        return datetime.fromtimestamp(self.simulated_start + (real - self.real_start) * self.factor, timezone.utc)


def _utc_day(real: float) -> date:
    return datetime.fromtimestamp(real, timezone.utc).date()


def _midnight_after(real: float) -> float:
    return datetime.combine(_utc_day(real) + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc).timestamp()


class LiveWriter:
    """Writes today's rows every `interval` real seconds over one reused connection, in a thread.

    Each write is one short transaction; none stays open between writes. A failed write is logged,
    the connection is dropped and opened again at the next write, and the totals it would have
    written go out with that write (the ETL catches up, as a real one does after an outage).
    """

    def __init__(self, dsn: str, *, interval: float = 10.0, compression: float = 1.0, seed_value: int = 7,
                 requests_per_day: float = REQUESTS_PER_DAY, password: str | None = None,
                 clock: Callable[[], float] | None = None, say: Callable[[str], None] | None = None,
                 traffic_from: datetime | None = None):
        self._dsn, self._password = dsn, password
        self.interval = interval
        self.requests_per_day = requests_per_day
        self._now = clock or time.time
        self._say = say or log.warning
        self._rng = np.random.default_rng(seed_value)
        self._last = self._now()
        # The traffic's time of day and week (the rows keep the real day): from traffic_from, else from now.
        self.clock = SimulatedClock(compression, self._last, traffic_from.timestamp() if traffic_from else None)
        self.incident: Incident | None = None
        self.writes = 0
        self._conn: psycopg2.extensions.connection | None = None
        self._day: Day | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start_incident(self, name: str, component: str = "search") -> Incident:
        """Start an incident now; it lasts until the writer stops."""
        with self._lock:
            self.incident = Incident(name, self._now(), component)
            return self.incident

    def write_once(self) -> bool:
        """Simulate the traffic since the last write and upsert the day's rows; False if the write failed."""
        with self._lock:
            now = self._now()
            updated = datetime.fromtimestamp(now, timezone.utc)
            try:
                conn = self._connection()
                with conn, conn.cursor() as cur:
                    if self._day is None:
                        self._day = load_day(cur, _utc_day(self._last))
                    finished = self._advance(self._last, now)
                    self._last = now
                    for day in (*finished, self._day):
                        self._write(cur, day, updated)
            except psycopg2.Error as exc:
                self._say(f"live writer: write failed ({str(exc).strip() or type(exc).__name__}); "
                          "connecting again at the next write")
                self._drop()
                return False
            self.writes += 1
            return True

    def _advance(self, start: float, end: float) -> list[Day]:
        """Add the simulated traffic of real [start, end) to the day's totals, cut at midnight and at the
        incident's start so that each piece has one day and one incident state. Returns the days that
        ended: their last totals are written once more, as the ETL's last write of a day is."""
        assert self._day is not None
        finished = []
        cuts = {start, end, _midnight_after(start)}
        if self.incident is not None:
            cuts.add(self.incident.started_at)
        points = sorted(t for t in cuts if start <= t <= end)
        for a, b in itertools.pairwise(points):
            if _utc_day(a) != self._day.day:
                finished.append(self._day)
                self._day = Day(_utc_day(a))
            incident = self.incident if self.incident is not None and a >= self.incident.started_at else None
            simulate(self._day, self._rng, self.clock.at(a), (b - a) * self.clock.factor, incident,
                     self.requests_per_day)
        return finished

    def _write(self, cur: psycopg2.extensions.cursor, day: Day, updated: datetime) -> None:
        for table, table_rows in rows(day, updated).items():
            cur.executemany(_upsert_sql(table), table_rows)

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self._dsn, password=self._password, connect_timeout=5,
                                          application_name="rag-analytics-exporter live-writer")
            if self.writes:
                self._say("live writer: connected again")
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg2.Error:
                pass
        self._conn = None

    def start(self) -> LiveWriter:
        """Write now, then every interval, until stop()."""
        def loop() -> None:
            while not self._stop.is_set():
                self.write_once()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=loop, name="live-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop writing and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            self._drop()

"""Replay an ETL's timeline through the real exporter and the committed rules.

What a case holds:
* minute-by-minute traffic of a service (bench/livesim.py's simulation: diurnal curve, weekdays,
  noise, incidents), days of history written as each day's final rows;
* an ETL that upserts the running totals into a real PostgreSQL every `cadence` minutes, with what
  real ETLs do: errors counted one write late, a re-aggregation that lowers a total, a
  de-duplication, whole-millisecond means, a top-N set that changes mid-day, a late first write of
  the day, a database clock ahead of the exporter's, NULL updated_at;
* the real exporter (Refresher, the real SQL, the real collectors) refreshed every minute on a
  simulated clock, the database's `now()` on the same clock through a function on the search path
  (the only thing simulated about PostgreSQL);
* its exposition scraped every minute, pods stopped and replaced, then written as promtool input
  series (samples at :30, staleness markers where a series or a pod goes away);
* `promtool test rules` on the committed rule files, which reports every alert that fired.

The suite runs a fast subset (tests/test_replay.py); bench/live_eval.py runs every case.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extensions

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livesim  # the bench's own module, beside this file
from livesim import DAY, Incident

from rag_analytics_exporter.collectors import build_registry
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher

JOB = "rag-analytics-exporter"
RULE_FILES = ("live.yml", "slo.yml", "rates.yml", "cost.yml", "exporter.yml")
ALERTS = ("RagComponentErrorBudgetBurn", "RagComponentLatencyHigh", "RagNegativeFeedbackHigh", "RagTrafficDrop",
          "RagModelTokenRunaway", "RagAnalyticsDataStale", "RagAnalyticsDatabaseClockSkew")
# Day 0 of every replay: a Monday, so that weekday effects fall as the case says.
EPOCH = datetime(2026, 1, 5, tzinfo=timezone.utc)
# Tokens and cost per request of each model (prompt, completion, USD per 1k tokens); the share of requests.
MODELS = {"gpt-4o": (1500, 300, 0.005, 0.7), "gpt-4o-mini": (1200, 250, 0.0006, 0.29), "rare": (1000, 200, 0.001, 0.01)}


@dataclass(frozen=True)
class Faults:
    """What the ETL does besides writing the right totals. Minutes count from the replay's start."""

    late_errors: bool = False  # each write's errors are the previous write's
    correction_at: int | None = None  # that write stores each model's prompt tokens 0.1 % (at least 1) lower
    dedup_at: int | None = None  # from that write on, requests and errors are stored 2 % lower
    whole_ms: bool = False  # avg_time_ms stored as whole milliseconds ...
    whole_ms_step_at: int | None = None  # ... and at that write search's is 1 ms lower, then back (a re-run)
    models_limit: int | None = None  # limits.models: with 1, gpt-4o-mini overtakes gpt-4o mid-day
    late_first_write_minutes: int = 0  # the first write of each live day comes this late (the last day's only)
    db_clock_ahead_seconds: float = 0.0  # the database's clock (and so updated_at) runs ahead
    null_updated_at: bool = False
    pod_replaced_at: int | None = None  # the exporter pod is replaced then ...
    pod_gap_minutes: int = 0  # ... and the new one is first scraped this much later


@dataclass(frozen=True)
class Case:
    """One replay: traffic, what the ETL does, how long, and what must page."""

    name: str
    live_minutes: int  # how long the exporter runs, from start_minute of the first live day
    faults: Faults = Faults()
    incident: Incident | None = None
    history_days: int = 8
    cadence: int = 5
    seed: int = 11
    start_weekday: int = 0
    # (alert, severity) -> at most this many minutes from the incident's start to the first firing
    expect: dict[tuple[str, str], int] = field(default_factory=dict)
    # (alert, severity) that may fire without being required (the total's page beside its stage's)
    allow: frozenset[tuple[str, str]] = frozenset()
    watch_from: int = 0  # minutes into the live span after which alerts are watched
    start_minute: int = 0  # the exporter starts this many minutes into the first live day
    quiet_after: int | None = None  # no alert may start firing after this minute of the live span

    @property
    def days(self) -> int:
        """Days simulated: the history, and the live span's days."""
        return self.history_days + math.ceil((self.start_minute + self.live_minutes) / DAY)


@dataclass
class Result:
    case: Case
    firing: dict[tuple[str, str], list[int]]  # minutes from the live span's start
    seconds: float = 0.0

    def first(self, key: tuple[str, str]) -> int | None:
        """Minutes from the incident's start (the live span's, without one) to the first firing."""
        minutes = self.firing.get(key)
        start = self._live(self.case.incident.start) if self.case.incident else 0
        return None if not minutes else minutes[0] - start

    def _live(self, minute: int) -> int:
        """A minute of the simulation as a minute of the live span (promtool's time)."""
        return minute - self.case.history_days * DAY - self.case.start_minute

    def problems(self) -> list[str]:
        """What went against the case's expectation: a missed or late page, an unexpected alert, a gap."""
        found = []
        for key, bound in self.case.expect.items():
            first = self.first(key)
            if first is None or first > bound:
                found.append(f"{key} first fired at {first} min, expected within {bound}")
        for key, minutes in self.firing.items():
            if key not in self.case.expect and key not in self.case.allow:
                found.append(f"{key} fired unexpectedly at {minutes[:5]}")
            if self.case.quiet_after is not None:
                late = [m for i, m in enumerate(minutes) if m > self.case.quiet_after
                        and (i == 0 or minutes[i - 1] != m - 1)]
                if late:
                    found.append(f"{key} started firing again at {late[:5]}, after minute {self.case.quiet_after}")
        if self.case.incident is not None:
            for key in self.case.expect:
                gaps = _gaps(self.firing.get(key, []), self._incident_end())
                if gaps:
                    found.append(f"{key} stopped firing during the incident at {gaps[:5]}")
        return found

    def _incident_end(self) -> int:
        incident = self.case.incident
        assert incident is not None
        return self._live(incident.start + incident.minutes)


def _gaps(minutes: list[int], end: int) -> list[int]:
    """Minutes before `end` at which a firing alert had stopped (it resolved while the incident went on)."""
    return [m + 1 for i, m in enumerate(minutes) if m + 1 < end and (i + 1 == len(minutes) or minutes[i + 1] != m + 1)]


CLOCK_SQL = """
CREATE SCHEMA replay_clock;
CREATE TABLE replay_clock.clock (at timestamptz NOT NULL);
INSERT INTO replay_clock.clock VALUES (now());
CREATE FUNCTION replay_clock.now() RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT at FROM replay_clock.clock';
"""


class Etl:
    """Writes the running totals of the simulated traffic, as a case's ETL does."""

    def __init__(self, conn: Any, case: Case, per_minute: dict[str, np.ndarray]):
        self.conn, self.case, self.faults = conn, case, case.faults
        # Running totals of each day so far, from each minute's own counts.
        self.totals = {key: _daily_cumsum(values) for key, values in per_minute.items()}
        self.previous: dict[tuple[str, date, str], float] = {}  # last written value, for late errors
        self.corrected: set[str] = set()  # models whose tokens were re-aggregated
        self.stepped = False
        self.last_day: int | None = None  # the day of the last live write
        self.live_from = case.history_days * DAY + case.start_minute

    def write(self, minute: int) -> None:
        """One run of the ETL at this minute: today's totals so far, and yesterday's final ones if this is the
        first run since midnight (the day that ended is finished in the same run)."""
        stamp = self.stamp(minute)
        day, upto = divmod(minute, DAY)
        if self.last_day is not None and self.last_day < day:
            self.write_day(day - 1, day * DAY - 1, stamp)
        if upto > 0:
            self.write_day(day, minute - 1, stamp)
        self.last_day = day

    def stamp(self, minute: int) -> datetime | None:
        if self.faults.null_updated_at:
            return None
        return at(minute) + timedelta(seconds=self.faults.db_clock_ahead_seconds)

    def write_day(self, day: int, upto: int, stamp: datetime | None) -> None:
        """Upsert `day`'s rows with its totals up to the end of minute `upto` (an index into the totals)."""
        values = {key: float(series[upto]) for key, series in self.totals.items()}
        when = (EPOCH + timedelta(days=day)).date()
        with self.conn.cursor() as cur:
            for component in (*livesim.COMPONENTS, "total"):
                requests = values[f"{component}_requests"]
                errors = values[f"{component}_errors"]
                if self.faults.late_errors and upto >= self.live_from:
                    errors, self.previous[(component, when, "errors")] = (
                        self.previous.get((component, when, "errors"), errors), errors)
                if self.faults.dedup_at is not None and upto >= self._live_minute(self.faults.dedup_at):
                    requests, errors = math.floor(requests * 0.98), math.floor(errors * 0.98)
                mean_ms = values[f"{component}_time"] / requests * 1000 if requests else None
                if mean_ms is not None and self.faults.whole_ms:
                    mean_ms = float(round(mean_ms))
                    step = self.faults.whole_ms_step_at
                    if component == "search" and step is not None and not self.stepped and upto >= self._live_minute(
                            step):
                        self.stepped, mean_ms = True, mean_ms - 1
                cur.execute("INSERT INTO latency_metrics (date, component, request_count, error_count, avg_time_ms,"
                            " updated_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (date, component) DO UPDATE SET"
                            " request_count = excluded.request_count, error_count = excluded.error_count,"
                            " avg_time_ms = excluded.avg_time_ms, updated_at = excluded.updated_at",
                            (when, component, int(requests), int(min(errors, requests)), mean_ms, stamp))
            requests = values["total_requests"]
            for model, (prompt, completion, usd, share) in self._models(day, upto).items():
                calls = math.floor(requests * share)
                prompt_tokens = calls * prompt
                key = (model, when, "prompt")
                if (self.faults.correction_at is not None and model not in self.corrected
                        and upto >= self._live_minute(self.faults.correction_at)):
                    self.corrected.add(model)
                    last = self.previous.get(key, prompt_tokens)
                    prompt_tokens = last - max(1, math.floor(last * 0.001))
                self.previous[key] = prompt_tokens
                tokens = prompt_tokens + calls * completion
                cur.execute("INSERT INTO token_usage_daily (date, model_name, request_count, prompt_tokens,"
                            " completion_tokens, total_tokens, estimated_cost_usd, updated_at) VALUES"
                            " (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (date, model_name) DO UPDATE SET"
                            " request_count = excluded.request_count, prompt_tokens = excluded.prompt_tokens,"
                            " completion_tokens = excluded.completion_tokens, total_tokens = excluded.total_tokens,"
                            " estimated_cost_usd = excluded.estimated_cost_usd, updated_at = excluded.updated_at",
                            (when, model, calls, prompt_tokens, calls * completion, tokens,
                             round(tokens / 1000 * usd, 6), stamp))
            cur.execute("INSERT INTO feedback_daily (date, positive_count, negative_count, updated_at)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT (date) DO UPDATE SET positive_count ="
                        " excluded.positive_count, negative_count = excluded.negative_count,"
                        " updated_at = excluded.updated_at",
                        (when, int(values["positive"]), int(values["negative"]), stamp))
        self.conn.commit()

    def _models(self, day: int, upto: int) -> dict[str, tuple[int, int, float, float]]:
        """The models' shares. With a models limit: a and b are near-equal before the last day, when b takes
        more calls, overtakes a in the exporter's ranking (the window's tokens) mid-day, and `other`, which
        held b, then holds a, whose total today is smaller: the running total of `other` goes down."""
        if self.faults.models_limit is None:
            return MODELS
        last = day == self.case.days - 1
        return {"a": (1000, 200, 0.002, 0.39 if last else 0.5), "b": (1000, 200, 0.002, 0.6 if last else 0.49),
                "rare": (1000, 200, 0.001, 0.01)}

    def _live_minute(self, minute: int) -> int:
        """A minute of the live span as a minute of the simulation."""
        return self.case.history_days * DAY + self.case.start_minute + minute


def _daily_cumsum(values: np.ndarray) -> np.ndarray:
    out = np.empty_like(values)
    for start in range(0, len(values), DAY):
        out[start:start + DAY] = np.cumsum(values[start:start + DAY])
    return out


def at(minute: int) -> datetime:
    """The simulated wall-clock time of a minute counted from the replay's day 0."""
    return EPOCH + timedelta(minutes=minute)


class Exporter:
    """One exporter process (a pod): the real Refresher on the simulated clock, and its scrapes."""

    def __init__(self, dsn: str, config: Config, instance: str, clock: list[float]):
        self.instance = instance
        self.clock = clock
        self.database = Database(dsn, password=None, application_name="replay", connect_timeout=5,
                                 statement_timeout=30, lock_timeout=5)
        self.refresher = Refresher(self.database, config, clock=lambda: clock[0])
        self.registry = build_registry(lambda: self.refresher.snapshot, clock=lambda: clock[0])

    def scrape(self, names: set[str]) -> dict[str, float]:
        """The samples the rules read, keyed by their series as promtool writes them."""
        out = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name in names:
                    labels = {**sample.labels, "instance": self.instance, "job": JOB}
                    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                    out[f"{sample.name}{{{text}}}"] = sample.value
        return out


def rule_metric_names() -> set[str]:
    """The exporter's families the committed rules read."""
    import re
    text = "".join((livesim.RULES / name).read_text() for name in RULE_FILES)
    return set(re.findall(r"\brag_[a-z0-9_]+", text)) - {name for name in re.findall(r"\brag_[a-z0-9_]+:", text)}


def replay(case: Case, dsn: str, promtool: str, workdir: Path | None = None,
           progress: Callable[[str], None] = lambda _: None) -> Result:
    """Run one case against the (empty) database at dsn; the alerts that fired."""
    import time as _time
    started = _time.monotonic()
    days = case.days
    incidents = [case.incident] if case.incident else []
    per_minute = livesim.traffic(days, incidents, livesim.Shape(seed=case.seed), case.start_weekday)
    init_db(dsn)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(CLOCK_SQL)
        # The replay's own writes need no durability: without this, a commit a minute is half its time.
        cur.execute("SET synchronous_commit = off")
        if case.faults.null_updated_at:  # what a view over tables without the column gives the exporter
            for table in ("latency_metrics", "token_usage_daily", "feedback_daily"):
                cur.execute(f"ALTER TABLE {table} ALTER COLUMN updated_at DROP NOT NULL")
    conn.commit()
    etl = Etl(conn, case, per_minute)
    for day in range(case.history_days):  # each past day's final rows, written just after it ended
        etl.write_day(day, (day + 1) * DAY - 1, etl.stamp((day + 1) * DAY + 5))
    live_dsn = psycopg2.extensions.make_dsn(dsn, options="-c search_path=replay_clock,pg_catalog,public")
    config = Config(dsn=live_dsn, **({"max_models": case.faults.models_limit} if case.faults.models_limit else {}))
    clock = [0.0]
    exporters = [Exporter(live_dsn, config, "exporter-a:9841", clock)]
    names = rule_metric_names() | {name + suffix for name in rule_metric_names() for suffix in ("_created",)}
    rng = np.random.default_rng(case.seed)
    phase = int(rng.integers(case.cadence))
    first = case.history_days * DAY + case.start_minute
    if case.start_minute:
        etl.write(first - case.start_minute % case.cadence)  # the ETL has written the day so far
    scrapes: list[dict[str, float]] = []
    up: list[dict[str, float]] = []
    for minute in range(first, first + case.live_minutes):
        live = minute - first
        if case.faults.pod_replaced_at is not None and live == case.faults.pod_replaced_at:
            exporters = []
        if (case.faults.pod_replaced_at is not None and not exporters
                and live == case.faults.pod_replaced_at + case.faults.pod_gap_minutes):
            exporters = [Exporter(live_dsn, config, "exporter-b:9841", clock)]
        if _writes(minute, phase, case):
            etl.write(minute)
        clock[0] = at(minute).timestamp() + 15  # the refresh runs 15 s into the minute, the scrape at :30
        with conn.cursor() as cur:
            cur.execute("UPDATE replay_clock.clock SET at = %s",
                        (at(minute) + timedelta(seconds=15 + case.faults.db_clock_ahead_seconds),))
        conn.commit()
        for exporter in exporters:
            exporter.refresher.refresh()
        clock[0] = at(minute).timestamp() + 30
        scrape: dict[str, float] = {}
        for exporter in exporters:
            scrape |= exporter.scrape(names)
        scrapes.append(scrape)
        up.append({f'up{{instance="{e.instance}",job="{JOB}"}}': 1.0 for e in exporters})
        if (live + 1) % DAY == 0:
            progress(f"{case.name}: {(live + 1) // DAY} of {case.live_minutes / DAY:.1f} days replayed")
    for exporter in exporters:
        exporter.database.close()
    conn.close()
    input_series = _series([s | u for s, u in zip(scrapes, up, strict=True)])
    n = len(scrapes)
    firing = livesim.firing(input_series, range(case.watch_from, n), promtool, RULE_FILES, ALERTS, workdir)
    return Result(case, firing, _time.monotonic() - started)


def _writes(minute: int, phase: int, case: Case) -> bool:
    """Whether the ETL writes at this minute: every cadence, but for a late first write of the last day."""
    day, upto = divmod(minute, DAY)
    late = case.faults.late_first_write_minutes
    if late and day == case.days - 1 and upto <= late:
        return upto == late
    return (minute - phase) % case.cadence == 0


def _series(scrapes: list[dict[str, float]]) -> list[dict[str, str]]:
    """promtool input series: a sample at :30 of each minute, a staleness marker where a series goes away."""
    keys = sorted({key for scrape in scrapes for key in scrape})
    out = []
    for key in keys:
        values, present = [], False
        for scrape in scrapes:
            value = scrape.get(key)
            if value is None:
                values.append("_ stale" if present else "_ _")
                present = False
            else:
                values.append(f"_ {value:.12g}")
                present = True
        out.append({"series": key, "values": " ".join(values)})
    return out


HOUR = 60


def cases() -> list[Case]:
    """Every row of issue 28's table, and a clean control; the fast ones run in the suite."""
    burn = ("RagComponentErrorBudgetBurn", "critical")
    ticket = ("RagComponentErrorBudgetBurn", "warning")
    day = 8 * DAY  # the first live day, after 8 days of history
    week = 7 * DAY
    return [
        Case("clean control", live_minutes=2 * DAY, watch_from=HOUR),
        Case("outage 2.5 h, errors counted a write late", live_minutes=7 * HOUR, start_minute=6 * HOUR,
             faults=Faults(late_errors=True), incident=Incident("errors", day + 10 * HOUR, 150, 1.0, "search"),
             expect={burn: 15, ticket: 60}, watch_from=HOUR),  # one cadence more: the errors come a write late
        Case("prompt tokens re-aggregated 0.1 % lower", live_minutes=5 * HOUR, start_minute=10 * HOUR,
             faults=Faults(correction_at=3 * HOUR), watch_from=HOUR),
        # The morning outage pages (and may ticket); the de-duplication two hours later must not page again.
        Case("de-duplication 2 % lower after a morning outage", live_minutes=4 * HOUR, start_minute=8 * HOUR,
             faults=Faults(dedup_at=3 * HOUR), incident=Incident("errors", day + 9 * HOUR, 20, 1.0, "search"),
             expect={burn: 10}, allow=frozenset({ticket}), watch_from=30, quiet_after=150),
        # search's running mean (about 128 ms) stored in whole milliseconds, once 1 ms lower and back (the ETL
        # re-ran its mean) at 22:00, when a write adds under 0.8 % to the day's requests: mean x requests goes
        # down, then up by 1 ms x the day's requests.
        Case("whole-millisecond means", live_minutes=5 * HOUR, start_minute=18 * HOUR,
             faults=Faults(whole_ms=True, whole_ms_step_at=4 * HOUR), watch_from=HOUR),
        # b overtakes a in the ranking at about 13:30, and `other` then holds a instead of b. At 15:00 every
        # model's tokens are re-aggregated 0.1 % lower, b's included, whose gauge has its own label by then
        # while its counter stays in `other` until midnight.
        Case("the top-N models change mid-day", live_minutes=4 * HOUR, start_minute=12 * HOUR,
             faults=Faults(models_limit=1, correction_at=3 * HOUR), watch_from=HOUR),
        Case("first write of the day 20 min late", live_minutes=week + HOUR,
             faults=Faults(late_first_write_minutes=20), watch_from=week - HOUR),
        Case("database clock 10 min ahead, and an outage", live_minutes=7 * HOUR, start_minute=6 * HOUR,
             faults=Faults(db_clock_ahead_seconds=600), incident=Incident("errors", day + 10 * HOUR, 60, 1.0, "search"),
             expect={burn: 10, ("RagAnalyticsDatabaseClockSkew", "warning"): 20}, allow=frozenset({ticket}),
             watch_from=HOUR),
        Case("updated_at NULL", live_minutes=2 * HOUR, start_minute=6 * HOUR, faults=Faults(null_updated_at=True),
             expect={("RagAnalyticsDataStale", "warning"): 30}),
        Case("exporter pod replaced, first scraped 3 min later", live_minutes=week + 16 * HOUR,
             faults=Faults(pod_replaced_at=week + 15 * HOUR, pod_gap_minutes=3), watch_from=week),
    ]


def by_name(name: str) -> Case:
    return next(case for case in cases() if case.name == name)

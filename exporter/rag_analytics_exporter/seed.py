"""Synthetic demo data for the seven tables: realistic rhythm, known anomalies, deterministic per seed."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np
import psycopg2
import psycopg2.extensions

from . import tables
from .anomaly import BASELINES, score_day
from .config import Config
from .db import TABLES

COMPONENTS = {  # mean stage time in ms and the log-normal spread of one request's time
    "embedding": (45.0, 0.35),
    "search": (85.0, 0.45),
    "context": (25.0, 0.30),
    "llm": (1250.0, 0.50),
    "post": (30.0, 0.30),
}
# Well inside the availability objective's budget (mixin/config.py: 0.5 %), as a healthy service runs:
# the total (every stage's errors, 0.27 %) too, or its slow burn-rate ticket would open on clean days.
BASE_ERROR_RATIO = {"embedding": 0.0005, "search": 0.0008, "context": 0.0002, "llm": 0.001, "post": 0.0002}
# A mid-sized service: at this volume the live alerts' gates (100 requests, 50 feedback events in a
# window) hold by day and close on the quietest nights, as bench/livesim.py's simulated service.
REQUESTS_PER_DAY = 60_000  # on an average weekday
FEEDBACK_SHARE = 0.08  # of requests get a thumbs up or down
MODELS = {  # share of requests, USD per 1M prompt tokens, USD per 1M completion tokens
    "gpt-4o-mini": (0.55, 0.15, 0.60),
    "gpt-4o": (0.25, 2.50, 10.00),
    "claude-3-5-sonnet": (0.15, 3.00, 15.00),
    "llama-3.1-8b-instruct": (0.05, 0.05, 0.08),
}
TAGS = {  # share of feedback carrying the tag, share of it that is positive
    "accurate": (0.30, 0.97), "helpful": (0.25, 0.95), "well_sourced": (0.10, 0.93),
    "hallucination": (0.08, 0.03), "too_long": (0.07, 0.25), "outdated": (0.06, 0.10),
    "wrong_source": (0.05, 0.05), "incomplete": (0.05, 0.15), "off_topic": (0.04, 0.05),
}
PATTERNS = {  # share of requests that are this kind of follow-up, mean answer ms, positive share
    "clarification": (0.060, 1900.0, 0.78), "drill_down": (0.045, 2600.0, 0.82),
    "rephrase": (0.030, 1700.0, 0.55), "comparison": (0.015, 3100.0, 0.74),
    "example_request": (0.012, 2300.0, 0.80), "correction": (0.008, 2000.0, 0.41),
}
_Z = {"p50": 0.0, "p90": 1.2815515655, "p95": 1.6448536270, "p99": 2.3263478740}

ANOMALY_COMPONENT, ANOMALY_MODEL, ERROR_COMPONENT = "llm", "gpt-4o", "search"
# Each seeded anomaly (llm's mean latency, gpt-4o's total tokens, search's error ratio, the negative share of
# feedback) scores at least this z on yesterday in every anomaly.baseline mode, with Config's default lookback,
# minimum days and spread floor: past the critical threshold (mixin/config.py: 6) by a third, whichever weekday
# yesterday is and whatever the draw. Fixed multiples were not: a 4x token surge on a Saturday is 2.2 weekdays'
# tokens, and plain scored it 5.7 (issue 29). tests/test_seed.py checks every weekday and mode.
ANOMALY_Z = 8.0
# At least these: multiples of the day's usual mean latency and calls, an error ratio and a negative share.
LATENCY_SPIKE, TOKEN_SURGE, ERROR_BURST, NEGATIVE_SURGE = 2.2, 4, 0.12, 0.45
_SCORING = Config()


class TablesNotEmpty(Exception):
    """seed-demo found rows and was not told to replace them."""


@dataclass(frozen=True)
class DemoScale:
    """How much data to make; the demo default, or larger for the benchmark."""

    days: int = 60
    chunks: int = 12_000
    extra_models: int = 0
    extra_tags: int = 0
    extra_patterns: int = 0


@dataclass(frozen=True)
class _Labels:
    """The label values of one run: the fixed sets, plus the extra ones a benchmark's scale asks for."""

    models: dict[str, tuple[float, float, float]]
    tags: dict[str, tuple[float, float]]
    patterns: dict[str, tuple[float, float, float]]


@dataclass(frozen=True)
class _Day:
    """One generated day: its date, its share of a whole day's traffic, and whether it carries the anomalies."""

    day: date
    fraction: float
    surge: bool
    updated: datetime

    @property
    def weekend(self) -> bool:
        return self.day.weekday() >= 5


def generate(scale: DemoScale, seed: int, at: datetime, anomalies: bool, anomalies_today: bool = True
             ) -> dict[str, list[tuple]]:
    """Rows for the six daily tables, the last day being `at`'s UTC day, partial up to `at`.

    anomalies puts them on yesterday (scored) and, with anomalies_today, on today so far too.
    """
    # One generator drawn in a fixed order, day after day and table after table: the rows are the
    # same for a seed only as long as that order is (tests/test_seed.py pins them).
    rng = np.random.default_rng(seed)
    labels = _labels(scale)
    rows: dict[str, list[tuple]] = {t: [] for t in TABLES if t != tables.CHUNK_RETRIEVAL_STATS.name}
    # The anomalies' series so far (mean latency in ms, total tokens, error ratio, negative share), which
    # a whole surge day is made strong against.
    history: _History = {"latency": {}, "tokens": {}, "errors": {}, "negative": {}}
    for day in _days(scale.days, at, anomalies, anomalies_today):
        requests = int(REQUESTS_PER_DAY * (0.55 if day.weekend else 1.0) * rng.normal(1.0, 0.05) * day.fraction)
        rows["latency_metrics"] += _latency_rows(rng, day, requests, history)
        rows["token_usage_daily"] += _token_rows(rng, day, requests, labels.models, history["tokens"])
        rows["citation_daily"].append(_citation_row(rng, day, requests))
        feedback = int(requests * FEEDBACK_SHARE)
        rows["feedback_daily"].append(_feedback_row(rng, day, feedback, history["negative"]))
        rows["feedback_tags_daily"] += _tag_rows(rng, day, feedback, labels.tags)
        rows["follow_up_patterns_daily"] += _pattern_rows(rng, day, requests, labels.patterns)
    return rows


def _labels(scale: DemoScale) -> _Labels:
    models = dict(MODELS) | {f"finetune-{i:03d}": (0.02, 0.5 + i % 7, 1.5 + i % 5) for i in range(scale.extra_models)}
    tags = dict(TAGS) | {f"tag_{i:03d}": (0.01, 0.5) for i in range(scale.extra_tags)}
    patterns = dict(PATTERNS) | {f"pattern_{i:03d}": (0.002, 2200.0, 0.6) for i in range(scale.extra_patterns)}
    return _Labels(models, tags, patterns)


def _days(count: int, at: datetime, anomalies: bool, anomalies_today: bool) -> list[_Day]:
    """The days to generate, oldest first; today is partial and was written two minutes before `at`."""
    today = at.astimezone(timezone.utc).date()
    midnight = datetime.combine(today, time(), tzinfo=timezone.utc)
    elapsed = (at - midnight).total_seconds() / 86400
    # Never less than a tenth of a day, so a demo started just after midnight still has volume.
    today_fraction = max(elapsed, 0.1)
    # A whole day's rows were written by the ETL's run ten minutes after it ended, and today's two minutes
    # before `at`; just after midnight, neither in the future nor before its own day (the exporter takes an
    # updated_at ahead of its clock for a wrong one, and check-db says a table is not written today).
    days = [_Day(day, 1.0, anomalies and offset == 1,
                 min(datetime.combine(day + timedelta(days=1), time(0, 10), tzinfo=timezone.utc), at))
            for offset in range(count - 1, 0, -1) for day in [today - timedelta(days=offset)]]
    return [*days, _Day(today, today_fraction, anomalies and anomalies_today,
                        max(at - timedelta(minutes=2), midnight))]


_History = dict[str, dict[date, float]]


def at_least(series: Mapping[date, float], day: date, z: float = ANOMALY_Z) -> float:
    """The smallest value of day that scores z against series' earlier days in every baseline mode (0 when
    no mode has a baseline yet): every mode's centre plus z of its spread, neither of which depends on
    the scored value."""
    needed = 0.0
    for mode in BASELINES:
        score = score_day({**series, day: 0.0}, day, lookback_days=_SCORING.lookback_days,
                          min_days=_SCORING.min_baseline_days, min_relative_spread=_SCORING.min_relative_spread,
                          baseline=mode)
        if score is not None:
            needed = max(needed, score.center + z * score.spread)
    return needed


def _latency_rows(rng: np.random.Generator, day: _Day, requests: int, history: _History) -> list[tuple]:
    """One row per component, and the total's: every stage's errors, the sum of the stages' means.

    On a whole surge day, the anomaly component's mean and the error component's errors are at least
    ANOMALY_Z against history."""
    rows, means, errors_by_stage = [], [], []
    whole_surge = day.surge and day.fraction == 1.0
    for component, (mean_ms, sigma) in COMPONENTS.items():
        mean = mean_ms * (0.95 if day.weekend else 1.0) * rng.normal(1.0, 0.03)
        if day.surge and component == ANOMALY_COMPONENT:
            mean *= LATENCY_SPIKE
            if whole_surge:
                mean = max(mean, at_least(history["latency"], day.day))
        error_ratio = ERROR_BURST if day.surge and component == ERROR_COMPONENT else BASE_ERROR_RATIO[component]
        errors = int(rng.binomial(requests, error_ratio))
        if whole_surge and component == ERROR_COMPONENT:
            errors = min(requests, max(errors, math.ceil(requests * at_least(history["errors"], day.day))))
        if component == ANOMALY_COMPONENT:
            history["latency"][day.day] = mean
        if component == ERROR_COMPONENT and requests:
            history["errors"][day.day] = errors / requests
        means.append(mean)
        errors_by_stage.append(errors)
        rows.append(latency_row(day.day, component, requests, errors, mean, sigma, day.updated))
    return [*rows, latency_row(day.day, "total", requests, sum(errors_by_stage), sum(means), 0.45, day.updated)]


def _token_rows(rng: np.random.Generator, day: _Day, requests: int,
                models: dict[str, tuple[float, float, float]], history: dict[date, float]) -> list[tuple]:
    """One row per model; the anomaly model gets TOKEN_SURGE times its calls on a surge day, and on a
    whole one at least enough calls for ANOMALY_Z against history (its total tokens so far)."""
    rows = []
    for model, (share, prompt_price, completion_price) in models.items():
        calls = int(requests * share * rng.normal(1.0, 0.04))
        prompt_per_call, completion_per_call = rng.normal(1800, 60), rng.normal(340, 20)
        if day.surge and model == ANOMALY_MODEL:
            calls *= TOKEN_SURGE
            if day.fraction == 1.0:
                # one call more than the quotient: int() below truncates each count
                needed = math.ceil(at_least(history, day.day) / (prompt_per_call + completion_per_call)) + 1
                calls = max(calls, needed)
        prompt = int(calls * prompt_per_call)
        completion = int(calls * completion_per_call)
        if model == ANOMALY_MODEL:
            history[day.day] = prompt + completion
        cost = round((prompt * prompt_price + completion * completion_price) / 1e6, 6)
        rows.append((day.day, model, calls, prompt, completion, prompt + completion, cost, day.updated))
    return rows


def _citation_row(rng: np.random.Generator, day: _Day, requests: int) -> tuple:
    buckets = [int(requests * share) for share in rng.dirichlet([12, 25, 30, 33])]
    return (day.day, sum(buckets), *buckets, day.updated)


def _feedback_row(rng: np.random.Generator, day: _Day, feedback: int, history: dict[date, float]) -> tuple:
    """Thumbs up and down; a surge day is NEGATIVE_SURGE negative (no draw, so the next tables' draws come
    earlier), and a whole one at least ANOMALY_Z against history (the negative shares so far)."""
    negative_share = NEGATIVE_SURGE if day.surge else float(np.clip(rng.normal(0.11, 0.015), 0.05, 0.2))
    negative = int(feedback * negative_share)
    if day.surge and day.fraction == 1.0:
        negative = min(feedback, max(negative, math.ceil(feedback * at_least(history, day.day))))
    if feedback:
        history[day.day] = negative / feedback
    return (day.day, feedback - negative, negative, day.updated)


def _tag_rows(rng: np.random.Generator, day: _Day, feedback: int, tags: dict[str, tuple[float, float]]
              ) -> list[tuple]:
    """One row per tag; the mostly negative tags triple on a surge day."""
    rows = []
    for tag, (share, positive_share) in tags.items():
        count = int(feedback * share * rng.normal(1.0, 0.1))
        if day.surge and positive_share < 0.5:
            count *= 3
        count = max(count, 0)
        positive = int(rng.binomial(count, positive_share))
        rows.append((day.day, tag, positive, count - positive, day.updated))
    return rows


def _pattern_rows(rng: np.random.Generator, day: _Day, requests: int,
                  patterns: dict[str, tuple[float, float, float]]) -> list[tuple]:
    rows = []
    for pattern, (share, answer_ms, positive_share) in patterns.items():
        frequency = int(requests * share * rng.normal(1.0, 0.08))
        with_feedback = int(frequency * 0.12)
        positive = int(rng.binomial(with_feedback, positive_share))
        mean_ms = answer_ms * rng.normal(1.0, 0.05)
        rows.append((day.day, pattern, frequency, mean_ms, with_feedback, positive, day.updated))
    return rows


def latency_row(day: date, component: str, requests: int, errors: int, mean: float | None, sigma: float,
                updated: datetime) -> tuple:
    """A latency_metrics row whose percentiles are those of a log-normal stage time of that mean."""
    if requests == 0 or mean is None:
        return (day, component, 0, 0, None, None, None, None, None, updated)
    mu = np.log(mean) - sigma**2 / 2  # log-normal whose mean is `mean`
    percentiles = [float(np.exp(mu + sigma * _Z[q])) for q in ("p50", "p90", "p95", "p99")]
    return (day, component, requests, errors, mean, *percentiles, updated)


# chunk_retrieval_stats is generated inside PostgreSQL: 10^7 rows never pass through Python.
# Retrievals follow a Lomax (Pareto II) law, as a few chunks are retrieved far more than the
# rest; relevance is roughly normal around 0.67; the citation rate grows with relevance cubed.
# setseed makes random() repeat for a given seed.
_CHUNKS_SQL = """
INSERT INTO chunk_retrieval_stats (chunk_id, document_id, chunk_size_chars, retrieval_count, citation_count,
                                   avg_relevance, last_retrieved_at, updated_at)
SELECT 'doc-' || lpad((g %% %(documents)s)::text, 6, '0') || '#' || g,
       'doc-' || lpad((g %% %(documents)s)::text, 6, '0'),
       200 + floor(u1 * 1400)::int,
       retrievals,
       least(retrievals, round(retrievals * least(1.0, power(relevance, 3) * 0.6) * (0.8 + 0.4 * u4)))::bigint,
       CASE WHEN retrievals > 0 THEN round(relevance::numeric, 4)::float8 END,
       CASE WHEN retrievals > 0 THEN %(at)s::timestamptz - make_interval(secs => floor(u1 * 86400 * 30)) END,
       %(at)s::timestamptz
FROM (
    SELECT g, u1, u4,
           floor(4 * (power(1 - u2, -1 / 1.3) - 1))::bigint AS retrievals,
           least(1.0, greatest(0.0, 0.67 + 0.16 * sqrt(-2 * ln(1 - u3)) * cos(2 * pi() * u4))) AS relevance
    FROM (SELECT g, random() AS u1, random() AS u2, random() AS u3, random() AS u4
          FROM generate_series(0, %(count)s - 1) AS g) AS draws
) AS chunks
"""


def insert_chunks(cur: psycopg2.extensions.cursor, count: int, seed_value: int, at: datetime) -> None:
    """Generate `count` chunk rows server-side, repeatably for a given seed."""
    cur.execute("SELECT setseed(%s)", ((seed_value % 1000) / 1000.0,))
    cur.execute(_CHUNKS_SQL, {"count": count, "documents": max(count // 20, 1), "at": at})


def seed(dsn: str, *, scale: DemoScale = DemoScale(), seed_value: int = 42, at: datetime | None = None,
         anomalies: bool = True, anomalies_today: bool = True, replace: bool = False,
         password: str | None = None) -> dict[str, int]:
    """Write demo data; refuses to touch tables that hold rows unless replace is set. Returns row counts."""
    at = at or datetime.now(timezone.utc)
    rows = generate(scale, seed_value, at, anomalies, anomalies_today)
    conn = psycopg2.connect(dsn, password=password, application_name="rag-analytics-exporter seed-demo")
    try:
        with conn, conn.cursor() as cur:
            if not replace:
                for table in TABLES:
                    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
                    [(exists,)] = cur.fetchall()
                    if exists:
                        raise TablesNotEmpty(f"table {table} already holds rows; pass --replace to overwrite them")
            cur.execute(f"TRUNCATE {', '.join(TABLES)}")
            for table, table_rows in rows.items():
                buffer = io.StringIO()
                for row in table_rows:
                    buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
                buffer.seek(0)
                cur.copy_from(buffer, table, columns=COPY_COLUMNS[table])
            insert_chunks(cur, scale.chunks, seed_value, at)
            cur.execute("ANALYZE")
    finally:
        conn.close()
    counts = {table: len(table_rows) for table, table_rows in rows.items()}
    return counts | {tables.CHUNK_RETRIEVAL_STATS.name: scale.chunks}


# Every column of each daily table, in the order of generate()'s rows.
COPY_COLUMNS = {t.name: t.column_names for t in tables.DAILY}

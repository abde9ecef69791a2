"""Pure functions from a table's rows to its snapshot section: validate, rank, group, sum, score."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from .config import Config
from .counters import LATE_WRITE_SECONDS, Running
from .db import ChunkRead, TableRead
from .queries import CHUNK_BUCKET_REASONS
from .score import Score
from .series import SCORED, Row, daily_series, labels, score_all, weighted_mean
from .snapshot import (
    CITATIONS,
    FEEDBACK,
    LATENCY,
    PATTERNS,
    TAGS,
    USAGE,
    ChunkData,
    CitationData,
    ComponentDay,
    FeedbackData,
    LatencyData,
    ModelDay,
    PatternData,
    PatternDay,
    RelevanceBucket,
    Section,
    TagData,
    TopChunk,
    UsageData,
    frozen_mapping,
    midnight_utc,
)
from .tables import CHUNK_RETRIEVAL_STATS, LATENCY_METRICS, TOKEN_USAGE_DAILY
from .validate import clean_label, validate_rows

LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99")
_STATISTIC_COLUMNS = {"mean": "avg_time_s", "p50": "p50_time_s", "p90": "p90_time_s", "p95": "p95_time_s",
                      "p99": "p99_time_s"}
_USAGE_SUMS = ("request_count", "prompt_tokens", "completion_tokens", "total_tokens", "estimated_cost_usd")
RELEVANCE_BUCKETS = tuple(f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10))

K = TypeVar("K", bound=Hashable)
D = TypeVar("D")


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def day_finished(read: TableRead, day: date) -> bool:
    """Whether the ETL has finished `day` in this table, so that it may be scored.

    Finished when the table holds rows of a later day (the ETL moved on), or when the day's
    rows were last written LATE_WRITE_SECONDS or more after the day ended (a re-run of a
    closed day). The ETL's last writes of a day, just after midnight, may still be partial.
    """
    if read.newest_date is not None and read.newest_date > day:
        return True
    written = _timestamp(read.previous_day_updated_at)
    return written is not None and written >= midnight_utc(day + timedelta(days=1)) + LATE_WRITE_SECONDS


def _section(read: TableRead, confirmed_at: float, rejected: Counter[str], data: D,
             running: tuple[Running, ...] = ()) -> Section[D]:
    unusable = {"null": read.null_updated_rows, "future": read.future_rows}
    return Section(table=read.table, confirmed_at=confirmed_at, newest_date=read.newest_date,
                   updated_at=_timestamp(read.updated_at), rows_read=len(read.rows),
                   rejected=frozen_mapping(rejected), data=data,
                   updated_at_unusable=frozen_mapping({k: v for k, v in unusable.items() if v}),
                   today_updated_at=_timestamp(read.today_updated_at), running=running)


def _running(rows: Iterable[Row], today: date, key: Callable[[Row], str], labels: Callable[[Row], tuple[str, ...]],
             values: Callable[[Row], dict[str, float | None]]) -> tuple[Running, ...]:
    """Today's and yesterday's running totals per day and key, for the counters (counters.advance). Rows of the
    same day and key (a view without the primary key, two names that clean to one label) are summed."""
    since = today - timedelta(days=1)
    summed: dict[tuple[date, str], tuple[tuple[str, ...], dict[str, float]]] = {}
    for row in rows:
        if row["date"] < since:
            continue
        _, totals = summed.setdefault((row["date"], key(row)), (labels(row), {}))
        for quantity, value in values(row).items():
            if value is not None:
                totals[quantity] = totals.get(quantity, 0.0) + value
    return tuple(Running(day, k, labels_of, frozen_mapping(totals))
                 for (day, k), (labels_of, totals) in summed.items())


def _newest(rows: list[Row], read: TableRead) -> list[Row]:
    """The rows of the table's newest day (the read also holds yesterday's, for the counters)."""
    return [row for row in rows if row["date"] == read.newest_date]


def _stage_seconds(row: Row) -> float | None:
    """The day's total time in the stage so far: its mean x its requests (exact, so a window's mean is)."""
    return None if row["avg_time_s"] is None else row["avg_time_s"] * row["request_count"]


def _ranked(read: TableRead, today: date, key: str, volume: Callable[[Row], float], limit: int,
            newest_only: bool = False) -> tuple[list[Row], Counter[str], dict[str, str]]:
    """The valid rows (newest_only: of the newest day only), the rejected ones by reason, and each key's
    label by rank_labels of its summed volume."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    if newest_only:
        rows = _newest(rows, read)
    return rows, rejected, labels(rows, key, volume, limit)


def _grouped(rows: Iterable[Row], by: Callable[[Row], K]) -> dict[K, list[Row]]:
    """Rows by group, groups in the order they first appear."""
    groups: dict[K, list[Row]] = defaultdict(list)
    for row in rows:
        groups[by(row)].append(row)
    return groups


def _scored(read: TableRead, series: Mapping[str, Mapping[date, float]], today: date, config: Config
            ) -> tuple[date, bool, Mapping[str, Score]]:
    """Yesterday, whether the ETL has finished it, and its scores: none until it has."""
    scored_day = today - timedelta(days=1)
    complete = day_finished(read, scored_day)
    return scored_day, complete, score_all(series, scored_day, config) if complete else frozen_mapping({})


def build_latency(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section[LatencyData]:
    """latency_metrics: the newest day per component, and yesterday's z-score of mean latency."""
    scored = SCORED[LATENCY_METRICS.name]
    rows, rejected, label = _ranked(read, today, scored.key, scored.volume, scored.limit(config))
    groups = _grouped(rows, lambda row: (row["date"], label[row["component"]]))
    components = []
    period_start = today - timedelta(days=config.slo_period_days - 1)
    period: dict[str, tuple[float, float]] = {}
    for (day, component), members in sorted(groups.items()):
        if period_start <= day <= today:
            requests, errors = period.get(component, (0.0, 0.0))
            period[component] = (requests + sum(m["request_count"] for m in members),
                                 errors + sum(m["error_count"] for m in members))
        if day != read.newest_date:
            continue
        mean = weighted_mean((m["avg_time_s"], m["request_count"]) for m in members)
        stats: dict[str, float] = {}
        if mean is not None:
            stats["mean"] = mean
        if len(members) == 1:  # percentiles of merged rows cannot be combined
            for statistic in LATENCY_STATISTICS[1:]:
                value = members[0][_STATISTIC_COLUMNS[statistic]]
                if value is not None:
                    stats[statistic] = value
        components.append(ComponentDay(
            component=component,
            requests=sum(m["request_count"] for m in members),
            errors=sum(m["error_count"] for m in members),
            latency_seconds=frozen_mapping(stats),
        ))
    scored_day, complete, anomalies = _scored(read, daily_series(rows, label, scored), today, config)
    running = _running(rows, today, lambda row: row["component"], lambda row: (label[row["component"]],),
                       lambda row: {"request_count": row["request_count"], "error_count": row["error_count"],
                                    "stage_seconds": _stage_seconds(row)})
    return _section(read, confirmed_at, rejected,
                    LatencyData(tuple(components), scored_day, anomalies, complete, frozen_mapping(period),
                                config.slo_period_days), running)


def build_usage(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section[UsageData]:
    """token_usage_daily: the newest day per model, and yesterday's z-score of total tokens."""
    scored = SCORED[TOKEN_USAGE_DAILY.name]
    rows, rejected, label = _ranked(read, today, scored.key, scored.volume, scored.limit(config))
    groups = _grouped(rows, lambda row: (row["date"], label[row["model_name"]]))
    models = []
    for (day, model), members in sorted(groups.items()):
        if day == read.newest_date:
            s = {column: sum(m[column] for m in members) for column in _USAGE_SUMS}
            budget = config.model_daily_cost_budget_usd.get(model, config.default_daily_cost_budget_usd)
            models.append(ModelDay(model=model, requests=s["request_count"], prompt_tokens=s["prompt_tokens"],
                                   completion_tokens=s["completion_tokens"], cost_usd=s["estimated_cost_usd"],
                                   cost_budget_usd=budget))
    scored_day, complete, anomalies = _scored(read, daily_series(rows, label, scored), today, config)
    running = _running(rows, today, lambda row: row["model_name"], lambda row: (label[row["model_name"]],),
                       lambda row: {q: row[q] for q in ("prompt_tokens", "completion_tokens", "estimated_cost_usd")})
    return _section(read, confirmed_at, rejected, UsageData(tuple(models), scored_day, anomalies, complete), running)


def build_citations(read: TableRead, confirmed_at: float, today: date, config: Config
                    ) -> Section[CitationData | None]:
    """citation_daily: the newest day's 0/1/2/3+ citation counts, and the SLO period's answers and uncited ones."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    data: CitationData | None = None
    newest = _newest(rows, read)
    if newest:
        row = newest[0]
        period = _period_rows(rows, today, config)
        data = CitationData(responses=row["responses_total"], by_citations=frozen_mapping({
            "0": row["zero_citations"], "1": row["one_citation"],
            "2": row["two_citations"], "3+": row["three_plus_citations"],
        }), period=(sum(r["responses_total"] for r in period), sum(r["zero_citations"] for r in period)),
            period_days=config.slo_period_days)
    columns = ("responses_total", "zero_citations", "one_citation", "two_citations", "three_plus_citations")
    running = _running(rows, today, lambda row: "", lambda row: (), lambda row: {q: row[q] for q in columns})
    return _section(read, confirmed_at, rejected, data, running)


def _period_rows(rows: list[Row], today: date, config: Config) -> list[Row]:
    """The rows of the SLO period: its last slo_period_days days, today included (as build_latency's)."""
    start = today - timedelta(days=config.slo_period_days - 1)
    return [row for row in rows if start <= row["date"] <= today]


def build_feedback(read: TableRead, confirmed_at: float, today: date, config: Config
                   ) -> Section[FeedbackData | None]:
    """feedback_daily: the newest day's positive and negative feedback, and the SLO period's."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    newest = _newest(rows, read)
    period = _period_rows(rows, today, config)
    data = FeedbackData(newest[0]["positive_count"], newest[0]["negative_count"],
                        (sum(r["positive_count"] for r in period), sum(r["negative_count"] for r in period)),
                        config.slo_period_days) if newest else None
    running = _running(rows, today, lambda row: "", lambda row: (),
                       lambda row: {q: row[q] for q in ("positive_count", "negative_count")})
    return _section(read, confirmed_at, rejected, data, running)


def build_tags(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section[TagData]:
    """feedback_tags_daily: the newest day per tag, top-N by volume and the rest as 'other'."""
    rows, rejected, label = _ranked(read, today, "tag", lambda row: row["positive_count"] + row["negative_count"],
                                    config.max_tags, newest_only=True)
    tags = {tag: (sum(m["positive_count"] for m in members), sum(m["negative_count"] for m in members))
            for tag, members in _grouped(rows, lambda row: label[row["tag"]]).items()}
    return _section(read, confirmed_at, rejected, TagData(frozen_mapping(tags)))


def build_patterns(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section[PatternData]:
    """follow_up_patterns_daily: the newest day per pattern, top-N by frequency and the rest as 'other'."""
    rows, rejected, label = _ranked(read, today, "pattern", lambda row: row["frequency"], config.max_patterns,
                                    newest_only=True)
    patterns = tuple(
        PatternDay(
            pattern=pattern,
            frequency=sum(m["frequency"] for m in members),
            mean_response_seconds=weighted_mean((m["avg_response_time_s"], m["frequency"]) for m in members),
            feedback=sum(m["feedback_count"] for m in members),
            positive_feedback=sum(m["positive_feedback_count"] for m in members),
        )
        for pattern, members in sorted(_grouped(rows, lambda row: label[row["pattern"]]).items())
    )
    return _section(read, confirmed_at, rejected, PatternData(patterns))


def build_chunks(read: ChunkRead, confirmed_at: float) -> Section[ChunkData]:
    """chunk_retrieval_stats: totals, the 10-bucket relevance histogram, and the top-N chunks."""
    rejected: Counter[str] = Counter()
    buckets = {b: RelevanceBucket(RELEVANCE_BUCKETS[b], 0, 0.0, 0.0) for b in range(10)}
    chunks, retrievals, citations = 0, 0.0, 0.0
    for bucket, count, bucket_retrievals, bucket_citations in read.buckets:
        reason = CHUNK_BUCKET_REASONS.get(bucket)
        if reason is not None and reason != "null_relevance":
            rejected[reason] += count
            continue
        # A chunk never scored has no relevance: it counts as a chunk, not in the histogram.
        chunks += count
        retrievals += bucket_retrievals
        citations += bucket_citations
        if reason is None:
            buckets[bucket] = RelevanceBucket(RELEVANCE_BUCKETS[bucket], count, bucket_retrievals, bucket_citations)
    top: list[TopChunk] = []
    for chunk_id, document_id, chunk_retrievals, chunk_citations, relevance in read.top:
        # Invalid rows were already counted by the bucket query; here they are only left out.
        if None in (chunk_id, document_id, chunk_retrievals, chunk_citations) or min(chunk_retrievals,
                                                                                    chunk_citations) < 0:
            continue
        if relevance is not None and not 0.0 <= relevance <= 1.0:  # also false for NaN
            continue
        chunk_label, document_label = clean_label(str(chunk_id)), clean_label(str(document_id))
        if chunk_label.strip():
            top.append(TopChunk(chunk_label, document_label, float(chunk_retrievals), float(chunk_citations),
                                relevance))
    data = ChunkData(chunks=chunks, retrievals=retrievals, citations=citations,
                     buckets=tuple(buckets.values()), top=_dedupe_top(top))
    return Section(table=CHUNK_RETRIEVAL_STATS.name, confirmed_at=confirmed_at, newest_date=None,
                   updated_at=_timestamp(read.updated_at), rows_read=chunks + sum(rejected.values()),
                   rejected=frozen_mapping(rejected), data=data)


def _dedupe_top(top: list[TopChunk]) -> tuple[TopChunk, ...]:
    """Two ids may clean to the same label; keep the first (most retrieved) so no series repeats."""
    seen: set[tuple[str, str]] = set()
    unique: list[TopChunk] = []
    for chunk in top:
        if (chunk.chunk_id, chunk.document_id) not in seen:
            seen.add((chunk.chunk_id, chunk.document_id))
            unique.append(chunk)
    return tuple(unique)


# What builds each daily table's section, keyed by the section keys whose types the builders return.
DAILY_BUILDERS: dict[str, Callable[[TableRead, float, date, Config], Section[Any]]] = {
    LATENCY.table: build_latency,
    USAGE.table: build_usage,
    CITATIONS.table: build_citations,
    FEEDBACK.table: build_feedback,
    TAGS.table: build_tags,
    PATTERNS.table: build_patterns,
}

"""The immutable snapshot a refresh builds from database rows, and the pure functions that build it."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

from .anomaly import Score, score_day
from .config import Config
from .db import CHUNK_BUCKET_REASONS, ChunkRead, TableRead
from .validate import clean_label, validate_rows

OTHER = "other"
LATENCY_STATISTICS = ("mean", "p50", "p90", "p95", "p99")
_STATISTIC_COLUMNS = {"mean": "avg_time_s", "p50": "p50_time_s", "p90": "p90_time_s", "p95": "p95_time_s",
                      "p99": "p99_time_s"}
RELEVANCE_BUCKETS = tuple(f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10))
# A day's rows written this long after the day ended are a re-run or a correction of a closed
# day, not the ETL's catch-up pass just after midnight (see day_finished).
LATE_WRITE_SECONDS = 3600.0


def midnight_utc(day: date) -> float:
    """Unix seconds of 00:00 UTC on day (how the exporter publishes dates)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc).timestamp()


def frozen_mapping(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A read-only copy, so a snapshot cannot be changed after it is built."""
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ComponentDay:
    component: str
    requests: float
    errors: float
    latency_seconds: Mapping[str, float]  # statistic -> seconds; only the ones known


@dataclass(frozen=True)
class ModelDay:
    model: str
    requests: float
    prompt_tokens: float
    completion_tokens: float
    cost_usd: float
    cost_budget_usd: float | None


@dataclass(frozen=True)
class PatternDay:
    pattern: str
    frequency: float
    mean_response_seconds: float | None
    feedback: float
    positive_feedback: float


@dataclass(frozen=True)
class TopChunk:
    chunk_id: str
    document_id: str
    retrievals: float
    citations: float
    relevance: float | None


@dataclass(frozen=True)
class RelevanceBucket:
    bucket: str
    chunks: int
    retrievals: float
    citations: float


@dataclass(frozen=True)
class Section:
    """What one table contributed: its freshness, its rejected rows, and its data."""

    table: str
    # When a refresh last confirmed this data current: it read the table, or (for the chunk
    # table, read every chunk_interval) it reached the database and the table was not due yet.
    # Staleness counts from here, so an outage withholds every table after max_data_age.
    confirmed_at: float
    newest_date: date | None
    updated_at: float | None  # unix seconds of the newest updated_at
    rows_read: int
    rejected: Mapping[str, int]
    data: Any  # one of the *Data classes below, or None for an empty table


@dataclass(frozen=True)
class LatencyData:
    components: tuple[ComponentDay, ...]
    scored_day: date
    anomalies: Mapping[str, Score]  # empty while the scored day is not finished
    scored_day_complete: bool = True


@dataclass(frozen=True)
class UsageData:
    models: tuple[ModelDay, ...]
    scored_day: date
    anomalies: Mapping[str, Score]  # empty while the scored day is not finished
    scored_day_complete: bool = True


@dataclass(frozen=True)
class CitationData:
    responses: float
    by_citations: Mapping[str, float]  # "0" | "1" | "2" | "3+" -> responses


@dataclass(frozen=True)
class FeedbackData:
    positive: float
    negative: float


@dataclass(frozen=True)
class TagData:
    tags: Mapping[str, tuple[float, float]]  # tag -> (positive, negative)


@dataclass(frozen=True)
class PatternData:
    patterns: tuple[PatternDay, ...]


@dataclass(frozen=True)
class ChunkData:
    chunks: int
    retrievals: float
    citations: float
    buckets: tuple[RelevanceBucket, ...]
    top: tuple[TopChunk, ...]


@dataclass(frozen=True)
class Health:
    """The exporter's view of its own refreshes."""

    up: bool = False
    last_attempt: float | None = None
    last_success: float | None = None
    duration_seconds: float | None = None
    refreshes: int = 0
    errors: Mapping[str, int] = field(default_factory=lambda: frozen_mapping({"connection": 0, "query": 0}))
    skipped: int = 0
    table_up: Mapping[str, bool] = field(default_factory=lambda: frozen_mapping({}))


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics serves. Built by a refresh, never changed afterwards."""

    sections: Mapping[str, Section]
    health: Health
    refresh_interval: float
    max_data_age: float

    def view(self, now: float) -> View:
        """What a scrape at `now` may serve: sections read within max_data_age (older data is withheld,
        not frozen), and today's UTC date."""
        fresh = {s.table: s for s in self.sections.values() if now - s.confirmed_at <= self.max_data_age}
        return View(fresh=frozen_mapping(fresh), today=datetime.fromtimestamp(now, timezone.utc).date())


@dataclass(frozen=True)
class View:
    """The part of a snapshot one scrape serves."""

    fresh: Mapping[str, Section]
    today: date

    @property
    def key(self) -> tuple[tuple[str, ...], date]:
        """Two views with equal keys of the same snapshot render the same exposition."""
        return tuple(sorted(self.fresh)), self.today

    def current(self, table: str) -> Section | None:
        """The table's section if fresh and its newest day is today.

        The per-day families ("today so far") are served only then: after midnight UTC,
        until the ETL writes the new day, yesterday's totals are not today's, and
        serving them would put one day's total into the next day's max_over_time.
        """
        section = self.fresh.get(table)
        return section if section is not None and section.newest_date == self.today else None


def empty_snapshot(config: Config) -> Snapshot:
    """The snapshot served before the first refresh finishes."""
    return Snapshot(sections=frozen_mapping({}), health=Health(), refresh_interval=config.refresh_interval,
                    max_data_age=config.max_data_age)


def rank_labels(totals: Mapping[str, float], limit: int) -> dict[str, str]:
    """Map each key to itself if it is among the top `limit` by total, else to 'other'."""
    ordered = sorted(totals, key=lambda k: (-totals[k], k))
    keep = set(ordered[:limit])
    return {k: (k if k in keep else OTHER) for k in ordered}


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    used = [(value, w) for value, w in pairs if value is not None and w > 0]
    total = weight = 0.0
    for value, w in used:
        total += value * w
        weight += w
    if weight <= 0:
        return None
    if math.isinf(total):
        # Finite values whose products overflow (1e303 s x 1e6 requests): weigh by shares instead,
        # which cannot exceed the largest value. Only then, so usual values keep their exact bits.
        return sum(value * (w / weight) for value, w in used)
    return total / weight


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


def _section(read: TableRead, confirmed_at: float, rejected: Counter[str], data: Any) -> Section:
    if read.future_rows:
        rejected["future_updated_at"] += read.future_rows
    return Section(table=read.table, confirmed_at=confirmed_at, newest_date=read.newest_date,
                   updated_at=_timestamp(read.updated_at), rows_read=len(read.rows) + read.future_rows,
                   rejected=frozen_mapping(rejected), data=data)


def build_latency(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section:
    """latency_metrics: the newest day per component, and yesterday's z-score of mean latency."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["component"]] += row["request_count"]
    label = rank_labels(totals, config.max_components)
    groups: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row["date"], label[row["component"]]].append(row)

    components = []
    series: dict[str, dict[date, float]] = defaultdict(dict)
    for (day, component), members in sorted(groups.items()):
        mean = _weighted_mean((m["avg_time_s"], m["request_count"]) for m in members)
        if mean is not None:
            series[component][day] = mean
        if day != read.newest_date:
            continue
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
    scored_day = today - timedelta(days=1)
    complete = day_finished(read, scored_day)
    anomalies = _score_all(series, scored_day, config) if complete else frozen_mapping({})
    return _section(read, confirmed_at, rejected, LatencyData(tuple(components), scored_day, anomalies, complete))


def build_usage(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section:
    """token_usage_daily: the newest day per model, and yesterday's z-score of total tokens."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["model_name"]] += row["total_tokens"]
    label = rank_labels(totals, config.max_models)
    sums: dict[tuple[date, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        key = (row["date"], label[row["model_name"]])
        for column in ("request_count", "prompt_tokens", "completion_tokens", "total_tokens", "estimated_cost_usd"):
            sums[key][column] += row[column]

    models = []
    series: dict[str, dict[date, float]] = defaultdict(dict)
    for (day, model), s in sorted(sums.items()):
        series[model][day] = s["total_tokens"]
        if day == read.newest_date:
            budget = config.model_daily_cost_budget_usd.get(model, config.default_daily_cost_budget_usd)
            models.append(ModelDay(model=model, requests=s["request_count"], prompt_tokens=s["prompt_tokens"],
                                   completion_tokens=s["completion_tokens"], cost_usd=s["estimated_cost_usd"],
                                   cost_budget_usd=budget))
    scored_day = today - timedelta(days=1)
    complete = day_finished(read, scored_day)
    anomalies = _score_all(series, scored_day, config) if complete else frozen_mapping({})
    return _section(read, confirmed_at, rejected, UsageData(tuple(models), scored_day, anomalies, complete))


def _score_all(series: Mapping[str, Mapping[date, float]], day: date, config: Config) -> Mapping[str, Score]:
    scores = {}
    for key, values in series.items():
        score = score_day(values, day, lookback_days=config.lookback_days, min_days=config.min_baseline_days,
                          min_relative_spread=config.min_relative_spread, baseline=config.baseline)
        if score is not None:
            scores[key] = score
    return frozen_mapping(scores)


def build_citations(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section:
    """citation_daily: the newest day's 0/1/2/3+ citation counts."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    data = None
    if rows:
        row = rows[0]
        data = CitationData(responses=row["responses_total"], by_citations=frozen_mapping({
            "0": row["zero_citations"], "1": row["one_citation"],
            "2": row["two_citations"], "3+": row["three_plus_citations"],
        }))
    return _section(read, confirmed_at, rejected, data)


def build_feedback(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section:
    """feedback_daily: the newest day's positive and negative feedback."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    data = FeedbackData(rows[0]["positive_count"], rows[0]["negative_count"]) if rows else None
    return _section(read, confirmed_at, rejected, data)


def build_tags(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section:
    """feedback_tags_daily: the newest day per tag, top-N by volume and the rest as 'other'."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["tag"]] += row["positive_count"] + row["negative_count"]
    label = rank_labels(totals, config.max_tags)
    tags: dict[str, tuple[float, float]] = {}
    for row in rows:
        positive, negative = tags.get(label[row["tag"]], (0.0, 0.0))
        tags[label[row["tag"]]] = (positive + row["positive_count"], negative + row["negative_count"])
    return _section(read, confirmed_at, rejected, TagData(frozen_mapping(tags)))


def build_patterns(read: TableRead, confirmed_at: float, today: date, config: Config) -> Section:
    """follow_up_patterns_daily: the newest day per pattern, top-N by frequency and the rest as 'other'."""
    rows, rejected = validate_rows(read.columns, read.rows, today)
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["pattern"]] += row["frequency"]
    label = rank_labels(totals, config.max_patterns)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[label[row["pattern"]]].append(row)
    patterns = tuple(
        PatternDay(
            pattern=pattern,
            frequency=sum(m["frequency"] for m in members),
            mean_response_seconds=_weighted_mean((m["avg_response_time_s"], m["frequency"]) for m in members),
            feedback=sum(m["feedback_count"] for m in members),
            positive_feedback=sum(m["positive_feedback_count"] for m in members),
        )
        for pattern, members in sorted(groups.items())
    )
    return _section(read, confirmed_at, rejected, PatternData(patterns))


def build_chunks(read: ChunkRead, confirmed_at: float) -> Section:
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
    top = []
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
    return Section(table="chunk_retrieval_stats", confirmed_at=confirmed_at, newest_date=None,
                   updated_at=_timestamp(read.updated_at), rows_read=chunks + sum(rejected.values()),
                   rejected=frozen_mapping(rejected), data=data)


def _dedupe_top(top: list[TopChunk]) -> tuple[TopChunk, ...]:
    """Two ids may clean to the same label; keep the first (most retrieved) so no series repeats."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for chunk in top:
        if (chunk.chunk_id, chunk.document_id) not in seen:
            seen.add((chunk.chunk_id, chunk.document_id))
            unique.append(chunk)
    return tuple(unique)


DAILY_BUILDERS = {
    "latency_metrics": build_latency,
    "token_usage_daily": build_usage,
    "citation_daily": build_citations,
    "feedback_daily": build_feedback,
    "feedback_tags_daily": build_tags,
    "follow_up_patterns_daily": build_patterns,
}

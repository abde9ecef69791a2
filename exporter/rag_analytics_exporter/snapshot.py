"""The immutable snapshot a refresh builds from database rows: one typed section per table, and health.

builders.py fills the sections; collectors read them through the section keys below, which carry
the type of each section's data, so that no reader has to check what it was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Generic, TypeVar, cast

from . import tables
from .config import Config
from .counters import Counters, Running
from .frozen import frozen_mapping, midnight_utc  # noqa: F401 (builders and collectors take them from here)
from .score import Score

T = TypeVar("T")


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
class Section(Generic[T]):
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
    data: T  # the table's *Data below; None for an empty citation or feedback table
    # Rows whose updated_at is no use for freshness ("null", "future"); their counts are still served.
    updated_at_unusable: Mapping[str, int] = field(default_factory=lambda: frozen_mapping({}))
    # Newest updated_at of the rows dated today, None before the ETL's first write of the day: the
    # freshness of today's traffic (yesterday's late writes after midnight do not make it fresh).
    today_updated_at: float | None = None
    # Today's and yesterday's running totals, for the counters (counters.advance).
    running: tuple[Running, ...] = ()


@dataclass(frozen=True)
class SectionKey(Generic[T]):
    """A table's name, typed with the data its section holds: View hands back a Section of that type."""

    table: str


@dataclass(frozen=True)
class LatencyData:
    components: tuple[ComponentDay, ...]
    scored_day: date
    anomalies: Mapping[str, Score]  # empty while the scored day is not finished
    scored_day_complete: bool = True
    # component -> (requests, errors) over the SLO period: its last slo_period_days days, today included
    period: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    period_days: int = 30


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
    # (responses, responses citing nothing) over the SLO period: its last period_days days, today included
    period: tuple[float, float] = (0.0, 0.0)
    period_days: int = 30


@dataclass(frozen=True)
class FeedbackData:
    positive: float
    negative: float
    period: tuple[float, float] = (0.0, 0.0)  # (positive, negative) over the SLO period, as CitationData's
    period_days: int = 30


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


# The section of each table, with its data's type. builders.DAILY_BUILDERS and build_chunks make
# exactly these types, and a snapshot holds only what they made: View's one cast rests on that.
LATENCY: SectionKey[LatencyData] = SectionKey(tables.LATENCY_METRICS.name)
USAGE: SectionKey[UsageData] = SectionKey(tables.TOKEN_USAGE_DAILY.name)
CITATIONS: SectionKey[CitationData | None] = SectionKey(tables.CITATION_DAILY.name)
CHUNKS: SectionKey[ChunkData] = SectionKey(tables.CHUNK_RETRIEVAL_STATS.name)
FEEDBACK: SectionKey[FeedbackData | None] = SectionKey(tables.FEEDBACK_DAILY.name)
TAGS: SectionKey[TagData] = SectionKey(tables.FEEDBACK_TAGS_DAILY.name)
PATTERNS: SectionKey[PatternData] = SectionKey(tables.FOLLOW_UP_PATTERNS_DAILY.name)


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
    # The database's now() minus the exporter's clock at the last read that reached the database.
    clock_offset_seconds: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything /metrics serves. Built by a refresh, never changed afterwards."""

    sections: Mapping[str, Section[Any]]
    health: Health
    refresh_interval: float
    max_data_age: float
    # Served whatever the data's age: a counter that stops growing is the truth about what was seen.
    counters: Counters = field(default_factory=Counters)
    chunk_refresh_interval: float = 600.0  # the chunk table is read on its own, slower, interval

    def view(self, now: float) -> View:
        """What a scrape at `now` may serve: sections read within max_data_age (older data is withheld,
        not frozen), and today's UTC date."""
        fresh = {s.table: s for s in self.sections.values() if now - s.confirmed_at <= self.max_data_age}
        return View(fresh=frozen_mapping(fresh), today=datetime.fromtimestamp(now, timezone.utc).date())


@dataclass(frozen=True)
class View:
    """The part of a snapshot one scrape serves."""

    fresh: Mapping[str, Section[Any]]
    today: date

    @property
    def key(self) -> tuple[tuple[str, ...], date]:
        """Two views with equal keys of the same snapshot render the same exposition."""
        return tuple(sorted(self.fresh)), self.today

    def section(self, key: SectionKey[T]) -> Section[T] | None:
        """The table's section if fresh."""
        return cast("Section[T] | None", self.fresh.get(key.table))

    def current(self, key: SectionKey[T]) -> Section[T] | None:
        """The table's section if fresh and its newest day is today.

        The per-day families ("today so far") are served only then: after midnight UTC,
        until the ETL writes the new day, yesterday's totals are not today's, and
        serving them would put one day's total into the next day's max_over_time.
        """
        section = self.section(key)
        return section if section is not None and section.newest_date == self.today else None


def empty_snapshot(config: Config) -> Snapshot:
    """The snapshot served before the first refresh finishes."""
    return Snapshot(sections=frozen_mapping({}), health=Health(), refresh_interval=config.refresh_interval,
                    max_data_age=config.max_data_age, chunk_refresh_interval=config.chunk_refresh_interval)

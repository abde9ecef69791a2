"""The seven aggregate tables, declared once: columns and their kinds, key, how each is read and what it feeds.

db.py builds its SQL from these declarations (table and column names come from here only, never from a
value), validate.py checks a value by its column's kind, seed.py copies rows in this column order, and
tests/test_tables.py checks that sql/schema.sql creates exactly these columns with these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """What a column holds, which decides how validate.py checks a value of it."""

    DATE = "date"  # the UTC day; never NULL, never after today
    KEY = "key"  # a label value: text, never NULL or blank
    COUNT = "count"  # a number >= 0, never NULL
    MILLISECONDS = "milliseconds"  # a duration >= 0, NULL on a day with no traffic; published in seconds
    USD = "usd"  # an amount >= 0, never NULL
    RATIO = "ratio"  # a score in [0, 1], NULL when never scored
    TIMESTAMP = "timestamp"  # a point in time, not a measure
    UPDATED_AT = "updated_at"  # when the ETL last wrote the row: read for the table's freshness only


class Read(Enum):
    """How a refresh reads a table."""

    WINDOW = "window"  # the anomaly baseline's and SLO period's days, and the newest day
    NEWEST_DAY = "newest_day"  # the newest day only
    AGGREGATED = "aggregated"  # cumulative, one row per chunk: aggregated in the database, no row comes out


@dataclass(frozen=True)
class Column:
    """One column: its name, its type as PostgreSQL's format_type() spells it, and its kind."""

    name: str
    type: str
    kind: Kind


@dataclass(frozen=True)
class Table:
    """One aggregate table, as docs/tables.md describes it."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the primary key
    read: Read
    builder: str  # the function in builders.py that turns its rows into a snapshot section
    # The modules of collectors/ that publish that section (collectors/health.py reports every table).
    collectors: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column, in the table's order (the order seed.py copies rows in)."""
        return tuple(c.name for c in self.columns)

    @property
    def read_columns(self) -> tuple[str, ...]:
        """The columns a refresh reads of each row, in order: all but updated_at."""
        return tuple(c.name for c in self.columns if c.kind is not Kind.UPDATED_AT)


_UPDATED_AT = Column("updated_at", "timestamp with time zone", Kind.UPDATED_AT)


def _date() -> Column:
    return Column("date", "date", Kind.DATE)


def _key(name: str) -> Column:
    return Column(name, "text", Kind.KEY)


def _count(name: str) -> Column:
    return Column(name, "bigint", Kind.COUNT)


def _ms(name: str) -> Column:
    return Column(name, "double precision", Kind.MILLISECONDS)


LATENCY_METRICS = Table(
    name="latency_metrics",
    columns=(
        _date(),
        _key("component"),
        _count("request_count"),
        _count("error_count"),
        _ms("avg_time_ms"),
        _ms("p50_time_ms"),
        _ms("p90_time_ms"),
        _ms("p95_time_ms"),
        _ms("p99_time_ms"),
        _UPDATED_AT,
    ),
    key=("date", "component"),
    read=Read.WINDOW,
    builder="build_latency",
    collectors=("latency", "anomalies"),
)
TOKEN_USAGE_DAILY = Table(
    name="token_usage_daily",
    columns=(
        _date(),
        _key("model_name"),
        _count("request_count"),
        _count("prompt_tokens"),
        _count("completion_tokens"),
        _count("total_tokens"),
        Column("estimated_cost_usd", "numeric(14,6)", Kind.USD),
        _UPDATED_AT,
    ),
    key=("date", "model_name"),
    read=Read.WINDOW,
    builder="build_usage",
    collectors=("usage", "anomalies"),
)
CITATION_DAILY = Table(
    name="citation_daily",
    columns=(
        _date(),
        _count("responses_total"),
        _count("zero_citations"),
        _count("one_citation"),
        _count("two_citations"),
        _count("three_plus_citations"),
        _UPDATED_AT,
    ),
    key=("date",),
    read=Read.WINDOW,
    builder="build_citations",
    collectors=("quality",),
)
CHUNK_RETRIEVAL_STATS = Table(
    name="chunk_retrieval_stats",
    columns=(
        _key("chunk_id"),
        _key("document_id"),
        Column("chunk_size_chars", "integer", Kind.COUNT),
        _count("retrieval_count"),
        _count("citation_count"),
        Column("avg_relevance", "double precision", Kind.RATIO),
        Column("last_retrieved_at", "timestamp with time zone", Kind.TIMESTAMP),
        _UPDATED_AT,
    ),
    key=("chunk_id",),
    read=Read.AGGREGATED,
    builder="build_chunks",
    collectors=("quality",),
)
FEEDBACK_DAILY = Table(
    name="feedback_daily",
    columns=(_date(), _count("positive_count"), _count("negative_count"), _UPDATED_AT),
    key=("date",),
    read=Read.WINDOW,
    builder="build_feedback",
    collectors=("quality",),
)
FEEDBACK_TAGS_DAILY = Table(
    name="feedback_tags_daily",
    columns=(_date(), _key("tag"), _count("positive_count"), _count("negative_count"), _UPDATED_AT),
    key=("date", "tag"),
    read=Read.NEWEST_DAY,
    builder="build_tags",
    collectors=("quality",),
)
FOLLOW_UP_PATTERNS_DAILY = Table(
    name="follow_up_patterns_daily",
    columns=(
        _date(),
        _key("pattern"),
        _count("frequency"),
        _ms("avg_response_time_ms"),
        _count("feedback_count"),
        _count("positive_feedback_count"),
        _UPDATED_AT,
    ),
    key=("date", "pattern"),
    read=Read.NEWEST_DAY,
    builder="build_patterns",
    collectors=("quality",),
)

# The component of latency_metrics that stands for the whole request: the overview's stats, RagTrafficDrop and
# the stage-over-total inhibition read component="total", so a schema without it silences them.
TOTAL_COMPONENT = "total"

ALL = (
    LATENCY_METRICS,
    TOKEN_USAGE_DAILY,
    CITATION_DAILY,
    CHUNK_RETRIEVAL_STATS,
    FEEDBACK_DAILY,
    FEEDBACK_TAGS_DAILY,
    FOLLOW_UP_PATTERNS_DAILY,
)
DAILY = tuple(t for t in ALL if t.read is not Read.AGGREGATED)
BY_NAME = {t.name: t for t in ALL}


def daily(name: str) -> Table:
    """The declaration of a daily table; a name not declared here is an error, never an identifier."""
    table = BY_NAME.get(name)
    if table is None or table.read is Read.AGGREGATED:
        raise KeyError(f"{name!r} is not a declared daily table")
    return table


def kinds_of_read_columns() -> dict[str, Kind]:
    """Each column a refresh reads of a daily table, with its kind (one kind per name across tables)."""
    kinds: dict[str, Kind] = {}
    for table in DAILY:
        for column in table.columns:
            if column.kind is Kind.UPDATED_AT:
                continue
            if kinds.setdefault(column.name, column.kind) is not column.kind:
                raise ValueError(f"column {column.name!r} has two kinds: {kinds[column.name]} and {column.kind}")
    return kinds

"""History for a new Prometheus: the aggregate tables written as timestamped OpenMetrics, as /metrics served them.

Each past day is rebuilt with the same builders and collectors that serve /metrics, so
names, labels, top-N capping and z-scores cannot differ from the live series. The
exporter's own health families are left out (they describe the exporter, not the past),
and so is chunk_retrieval_stats (a cumulative table keeps no history).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
from prometheus_client.utils import floatToGoString

from .builders import DAILY_BUILDERS
from .collectors import build_registry
from .config import Config
from .db import DAILY_TABLES, WINDOWED_TABLES, TableRead, columns_of, stream_days, unreadable_tables
from .snapshot import Health, Section, Snapshot, frozen_mapping, midnight_utc

# Prometheus 2.42 refuses backfilled samples inside its head block: the last 3 hours.
HEAD_MARGIN = timedelta(hours=3, minutes=5)
_SKIPPED_PREFIXES = ("rag_exporter_", "rag_table_")


def backfill(dsn: str, password: str | None, config: Config, since: date, output: Path, *,
             target: Mapping[str, str], at: datetime | None = None, step_seconds: int = 3600) -> dict[str, Any]:
    """Write OpenMetrics text for every day from `since` to today, one sample per series every step.

    `target` holds the labels Prometheus attaches when it scrapes the exporter (job, instance):
    with them the history and the live series are one series. Returns counts (days, samples,
    families) and skipped_tables: those missing or unreadable, left out as a refresh leaves them
    out. Samples later than `at` - 3h5m are left out.
    """
    at = at or datetime.now(timezone.utc)
    today = at.astimezone(timezone.utc).date()
    latest_sample = at - HEAD_MARGIN
    conn = psycopg2.connect(dsn, password=password, application_name=config.application_name + " backfill")
    conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
    stats: dict[str, Any] = {"days": 0, "samples": 0, "families": 0}
    with tempfile.TemporaryDirectory(prefix="rag-backfill-") as scratch:
        writers = _FamilyFiles(Path(scratch))
        try:
            stats["skipped_tables"] = skipped = unreadable_tables(conn, DAILY_TABLES)
            tables = tuple(table for table in DAILY_TABLES if table not in skipped)
            for day, sections in _days(conn, config, since, today, tables):
                instants = _instants(day, step_seconds, latest_sample)
                if not instants:
                    continue
                stats["days"] += 1
                snapshot = Snapshot(sections=frozen_mapping(sections), health=Health(),
                                    refresh_interval=config.refresh_interval, max_data_age=config.max_data_age)
                render_at = instants[0]
                for family in build_registry(_constant(snapshot), clock=_constant(render_at)).collect():
                    if family.name.startswith(_SKIPPED_PREFIXES):
                        continue
                    for sample in family.samples:
                        series = sample.name + _labels(sample.labels | dict(target))
                        value = floatToGoString(sample.value)
                        writers.append(family.name, family.type, family.documentation, series,
                                       "".join(f"{series} {value} {instant:.0f}\n" for instant in instants))
                        stats["samples"] += len(instants)
        finally:
            conn.close()
        stats["families"] = writers.concatenate(output)
    return stats


def _days(conn: psycopg2.extensions.connection, config: Config, since: date, today: date,
          tables: tuple[str, ...]) -> Iterator[tuple[date, dict[str, Section]]]:
    """For each day, the sections a refresh on that day would have built (a sliding window of rows)."""
    window_days = config.days_read  # what a refresh reads: the top-N and the SLO period's sums depend on it
    first = since - timedelta(days=window_days)
    streams = {table: _peekable(stream_days(conn, table, first, today)) for table in tables}
    windows: dict[str, deque[tuple[date, list[tuple]]]] = {table: deque() for table in tables}
    day = first
    while day <= today:
        sections = {}
        for table, stream in streams.items():
            window = windows[table]
            while (ahead := stream.peek()) is not None and ahead[0] <= day:
                window.append(next(stream))
            while window and window[0][0] < day - timedelta(days=window_days):
                window.popleft()
            if day < since or not window:
                continue
            # Read as db.read reads: the whole window for the scored tables, else the newest day.
            days = window if table in WINDOWED_TABLES else (window[-1],)
            rows = tuple(row for _, day_rows in days for row in day_rows)
            read = TableRead(table=table, columns=columns_of(table), rows=rows, newest_date=window[-1][0],
                             updated_at=None)
            confirmed_at = midnight_utc(day)
            sections[table] = DAILY_BUILDERS[table](read, confirmed_at, day, config)
        if day >= since:
            yield day, sections
        day += timedelta(days=1)


# Samples sit one minute past each step, never on midnight: Prometheus 2.42 range selectors
# include both ends, so a sample at 00:00 would count in the previous day's max_over_time.
SAMPLE_OFFSET_SECONDS = 60


def _instants(day: date, step_seconds: int, latest: datetime) -> list[float]:
    """The day's sample times: from a minute past midnight, every step, and never past the day's end.

    A step under a minute would otherwise carry the day's totals into the first seconds of the next
    day, where max_over_time(x[1d]) at the next midnight would take them for that day's.
    """
    start, end = midnight_utc(day) + SAMPLE_OFFSET_SECONDS, midnight_utc(day) + 86400
    return [t for t in range(int(start), int(end), step_seconds) if t <= latest.timestamp()]


def _escape(text: str) -> str:
    """OpenMetrics escaping for label values and HELP: backslash, newline, double quote."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"


_T = TypeVar("_T")


def _constant(value: _T) -> Callable[[], _T]:
    """A function returning value: it binds the loop's current value, where a closure would see the last."""
    return lambda: value


class _peekable:
    def __init__(self, iterator: Iterator[tuple[date, list[tuple]]]):
        self._iterator = iterator
        self._next = next(iterator, None)

    def peek(self) -> tuple[date, list[tuple]] | None:
        return self._next

    def __next__(self) -> tuple[date, list[tuple]]:
        current = self._next
        if current is None:
            raise StopIteration
        self._next = next(self._iterator, None)
        return current


class _FamilyFiles:
    """Scratch space: one file per series, so that each family and each series comes out in one piece
    (OpenMetrics requires both) while memory holds only names, however many days are written."""

    def __init__(self, folder: Path):
        self._folder = folder
        self._families: dict[str, tuple[str, str, dict[str, Path]]] = {}
        self._count = 0

    def append(self, family: str, kind: str, documentation: str, series: str, lines: str) -> None:
        """Add one day's lines of one series."""
        _, _, files = self._families.setdefault(family, (kind, documentation, {}))
        if series not in files:
            files[series] = self._folder / f"{self._count:06d}"
            self._count += 1
        with files[series].open("a", encoding="utf-8") as out:
            out.write(lines)

    def concatenate(self, output: Path) -> int:
        """Write every family (HELP, TYPE, then each series' samples) and the closing # EOF to output."""
        with output.open("w", encoding="utf-8") as out:
            for name, (kind, documentation, files) in self._families.items():
                out.write(f"# HELP {name} {_escape(documentation)}\n# TYPE {name} {kind}\n")
                for path in files.values():
                    with path.open(encoding="utf-8") as source:
                        shutil.copyfileobj(source, out)
            out.write("# EOF\n")
        return len(self._families)

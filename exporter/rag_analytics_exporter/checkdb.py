"""check-db: a database checked against the contract of docs/tables.md before the exporter is pointed at it.

It reads the seven names as a refresh does (db.Database, the same SQL and settings), builds each table's
section with the exporter's own builders, and adds what a refresh cannot see: the catalog's columns and
types, rows a refresh never selects, and running totals compared between two reads a few seconds apart.
A finding is an error when it would empty a panel or silence an alert, else a warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import psycopg2
import psycopg2.extensions

from . import catalog
from .builders import DAILY_BUILDERS, build_chunks
from .config import Config
from .db import ChunkRead, Database, DatabaseRead, QueryFailed, TableRead
from .dberrors import first_line, is_connection_failure
from .tables import ALL, CHUNK_RETRIEVAL_STATS, LATENCY_METRICS, TOTAL_COMPONENT, Kind, Table
from .validate import REASONS, validate_rows

ERROR, WARNING = "error", "warning"
PERCENTILES = ("p50_time_s", "p90_time_s", "p95_time_s", "p99_time_s")
_NUMERIC = {"smallint", "integer", "bigint", "numeric", "real", "double precision"}
_TEXT = {"text", "character varying", "character"}
_NUMBER_KINDS = (Kind.COUNT, Kind.MILLISECONDS, Kind.USD, Kind.RATIO)


@dataclass
class TableReport:
    """One table: what it is in the database, what the exporter would serve and reject, and the findings."""

    table: str
    relation: str = "missing"
    serves: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    findings: list[tuple[str, str]] = field(default_factory=list)  # (ERROR or WARNING, text)

    def add(self, level: str, text: str) -> None:
        self.findings.append((level, text))


def _type_finding(table: Table, column: str, kind: Kind, actual: str, declared: str) -> tuple[str, str] | None:
    """None when the exporter reads the type as the declared one; else how it goes wrong."""
    base = actual.split("(")[0]
    if actual == declared:
        return None
    said = f"{column} is {actual}, the contract says {declared}"
    if kind in _NUMBER_KINDS:
        return None if base in _NUMERIC else (ERROR, f"{said}: every row is rejected as wrong_type")
    if kind is Kind.KEY:
        if base in _TEXT:
            return None
        if table is CHUNK_RETRIEVAL_STATS:  # its ids are turned into text: a uuid or an integer id is fine
            return WARNING, f"{said}: served as text"
        return ERROR, f"{said}: every row is rejected as wrong_type; cast it in the view ({column}::text)"
    if kind is Kind.DATE:
        return ERROR, f"{said}: the table cannot be read into days; cast it in the view ({column}::date)"
    if kind is Kind.UPDATED_AT:
        if actual == "timestamp without time zone":
            return WARNING, f"{said}: it is read in the session's TimeZone; write UTC or convert in the view"
        return ERROR, f"{said}: the table's freshness cannot be read"
    return None  # last_retrieved_at: not read


def _columns(report: TableReport, table: Table, relation: catalog.Relation) -> bool:
    """Columns and types against the declaration; False when a declared column is missing."""
    report.relation = f"{relation.kind}, {len(relation.columns)} columns"
    missing = [c.name for c in table.columns if c.name not in relation.columns]
    if missing:
        report.add(ERROR, f"no column {', '.join(missing)}: every read of the table fails, its panels are empty")
    for column in table.columns:
        actual = relation.columns.get(column.name)
        finding = actual and _type_finding(table, column.name, column.kind, actual, column.type)
        if finding:
            report.add(*finding)
    return not missing


def _values(report: TableReport, table: Table, found: catalog.Values) -> None:
    if found.null_updated_at:
        everything = " (every row: no freshness at all, RagAnalyticsDataStale can never fire)" if (
            found.null_updated_at == found.rows) else ""
        report.add(ERROR, f"{found.null_updated_at} of {found.rows} rows have a NULL updated_at{everything}: they "
                          "are left out of the table's freshness (rag_table_updated_timestamp_seconds)")
    if found.future_dates:
        report.add(WARNING, f"{_rows(found.future_dates)} dated after today (UTC): never read before their day; "
                            "is the ETL writing local dates?")
    if found.duplicate_keys:
        report.add(WARNING, f"{found.duplicate_keys} values of the key ({', '.join(table.key)}) are held by more "
                            "than one row: the exporter sums them and drops their percentiles")


def _rejections(report: TableReport, rejected: dict[str, int], rows: int) -> None:
    report.rejected = {reason: count for reason, count in sorted(rejected.items()) if count}
    for reason, count in report.rejected.items():
        level = ERROR if reason == "out_of_range" else WARNING
        report.add(level, f"{count} of {rows} rows rejected as {reason}: {REASONS.get(reason, reason)}")


def _daily(report: TableReport, table: Table, read: TableRead, today: date, now: float, config: Config) -> None:
    """What the exporter would serve of a daily table, and what its newest day lacks."""
    section = DAILY_BUILDERS[table.name](read, now, today, config)
    _rejections(report, dict(section.rejected), section.rows_read)
    rows, _ = validate_rows(read.columns, read.rows, today)
    newest = [row for row in rows if row["date"] == read.newest_date]
    keys = [c.name for c in table.columns if c.kind is Kind.KEY]
    names = sorted({str(row[keys[0]]) for row in newest}) if keys else []
    if read.newest_date is None:
        report.add(ERROR, "no rows: its panels are empty")
        return
    when = "today" if read.newest_date == today else f"{(today - read.newest_date).days} days ago"
    shown = f": {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}" if names else ""
    report.serves.append(f"{read.newest_date} ({when}), {_rows(len(newest))}{shown}; {_rows(len(read.rows))} read")
    if read.newest_date != today:
        report.add(ERROR, f"no row dated today ({today}, UTC): the exporter serves the newest day only while it is "
                          "today, so the table's panels are empty")
    elif not newest:
        report.add(ERROR, "every row of today is rejected: the table's panels are empty")
    if read.updated_at is not None:
        age = now - read.updated_at.timestamp()
        report.serves.append(f"last written {written_ago(age)} ({read.updated_at.isoformat(timespec='seconds')})")
        if read.updated_at.date() < today:
            report.add(WARNING, "not written today: RagAnalyticsDataStale fires once a table is hours old")
    if table is LATENCY_METRICS:
        _latency(report, rows, read.newest_date)


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


def _rows(count: int) -> str:
    return _counted(count, "row")


def _latency(report: TableReport, rows: list[dict[str, Any]], newest: date) -> None:
    components = {row["component"] for row in rows if row["date"] == newest}
    if components and TOTAL_COMPONENT not in components:
        report.add(ERROR, f"no component={TOTAL_COMPONENT!r} on {newest}: the overview's stats, RagTrafficDrop and "
                          "the stage-over-total inhibition read it; name the whole request's row "
                          f"{TOTAL_COMPONENT!r} in the view")
    disordered = [row for row in rows
                  if None not in (values := [row[p] for p in PERCENTILES]) and values != sorted(values)]
    if disordered:
        row = disordered[0]
        shown = ", ".join(f"{p[:3]} {row[p] * 1000:g} ms" for p in PERCENTILES)
        report.add(ERROR, f"{len(disordered)} rows have p50 <= p90 <= p95 <= p99 broken, e.g. {row['component']} on "
                          f"{row['date']} ({shown}): a column holds another statistic or unit, so the latency "
                          "panels and alerts read wrong values")


def _chunks(report: TableReport, read: ChunkRead, found: catalog.Values, now: float) -> None:
    section = build_chunks(read, now)
    _rejections(report, dict(section.rejected), section.rows_read)
    data = section.data
    report.serves.append(f"{data.chunks} chunks, {data.retrievals:g} retrievals, {data.citations:g} citations; "
                         f"top {len(data.top)} chunks by id")
    if found.max_relevance is not None and 1 < found.max_relevance <= 100:
        report.add(ERROR, f"avg_relevance goes up to {found.max_relevance:g}: a 0..100 scale? the contract is 0..1 "
                          "(avg_relevance / 100 in the view); rows above 1 are left out of every chunk total")
    if data.chunks == 0:
        report.add(ERROR, "no chunk is served: the chunk panels are empty")


def _went_down(first: Sequence[Any], second: Sequence[Any], table: Table, today: date) -> list[str]:
    """Today's running totals that are lower in the second read than in the first."""
    columns = table.read_columns
    kinds = {c.name: c.kind for c in table.columns}
    counts = [i for i, name in enumerate(columns) if kinds[name] is Kind.COUNT]
    keys = [i for i, name in enumerate(columns) if kinds[name] in (Kind.DATE, Kind.KEY)]
    before = {tuple(row[i] for i in keys): row for row in first if row[0] == today}
    drops = []
    for row in second:
        earlier = before.get(tuple(row[i] for i in keys))
        for i in counts:
            if earlier is not None and _lower(row[i], earlier[i]):
                key = ", ".join(str(row[k]) for k in keys)
                drops.append(f"{columns[i]} of ({key}) went from {earlier[i]} to {row[i]}")
    return drops


def _lower(now: Any, before: Any) -> bool:
    try:
        return bool(now < before)
    except TypeError:  # a NULL or a wrong type: rejected and reported elsewhere
        return False


def check(config: Config, password: str | None, pause: float = 3.0, clock: Callable[[], float] = time.time,
          wait: Callable[[float], None] = time.sleep) -> list[TableReport]:
    """Every table's report. Raises psycopg2.Error when the database cannot be reached at all, and
    DatabaseUnavailable when it is lost during the check.

    One connection at a time, as the role's connection limit allows beside a running exporter. wait(pause)
    runs between the two reads (a test writes there what an ETL would).
    """
    now = clock()
    today = datetime.fromtimestamp(now, timezone.utc).date()
    reports = {table.name: TableReport(table.name) for table in ALL}
    name = config.application_name + " check-db"
    conn = catalog.connect(config.dsn, password, name, config.connect_timeout, config.statement_timeout)
    try:
        readable = _catalog(conn, reports, today)
    finally:
        conn.close()
    database = Database(config.dsn, password=password, application_name=name, connect_timeout=config.connect_timeout,
                        statement_timeout=config.statement_timeout, lock_timeout=config.lock_timeout)
    since = date.fromordinal(today.toordinal() - config.days_read)

    def read() -> DatabaseRead:
        return database.read(today, since, with_chunks=True, top_chunks=config.top_chunks,
                             now=datetime.fromtimestamp(clock(), timezone.utc))

    try:
        first = read()
        wait(pause)
        second = read()
    finally:
        database.close()
    for table in ALL:
        _outcome(reports[table.name], table, second.tables.get(table.name, second.chunks),
                 first.tables.get(table.name, first.chunks), readable.get(table.name), today, now, config, pause)
    return list(reports.values())


def _catalog(conn: psycopg2.extensions.connection, reports: dict[str, TableReport], today: date
             ) -> dict[str, catalog.Values]:
    """Each table's columns and types, and the counts of a table that has every declared column."""
    found, unreadable = catalog.relations(conn)
    readable = {}
    for table in ALL:
        report = reports[table.name]
        if table.name in unreadable:
            report.add(ERROR, f"{unreadable[table.name]}: its panels are empty and rag_exporter_table_up is 0")
        elif _columns(report, table, found[table.name]):
            try:
                readable[table.name] = values = catalog.values(conn, table, today)
            except psycopg2.Error as exc:  # a scan of all rows may exceed statement_timeout on a huge table
                if is_connection_failure(exc, conn):
                    raise
                report.add(WARNING, f"its rows could not be counted ({first_line(exc)}): NULL updated_at, "
                                    "future dates and duplicate keys are not checked")
                readable[table.name] = values = catalog.Values(0, 0, 0, None, 0)
            _values(report, table, values)
    return readable


def _outcome(report: TableReport, table: Table, read: Any, earlier: Any, found: catalog.Values | None,
             today: date, now: float, config: Config, pause: float) -> None:
    """One table's reads, as the exporter would use them."""
    if found is None:
        return  # missing, unreadable or without a declared column: already said
    try:
        _used(report, table, read, earlier, found, today, now, config, pause)
    except Exception as exc:  # noqa: BLE001 (what the refresh would do: fail this table, say why)
        report.add(ERROR, f"the exporter cannot use its rows ({type(exc).__name__}: {exc}): the refresh fails the "
                          "table, its panels are empty")


def _used(report: TableReport, table: Table, read: Any, earlier: Any, found: catalog.Values, today: date,
          now: float, config: Config, pause: float) -> None:
    if isinstance(read, QueryFailed):
        report.add(ERROR, f"reading it fails: {read.reason}")
    elif isinstance(read, ChunkRead):
        _chunks(report, read, found, now)
        if isinstance(earlier, ChunkRead):
            for what, i in (("retrievals", 2), ("citations", 3)):
                before, after = (sum(b[i] for b in r.buckets) for r in (earlier, read))
                if after < before:
                    report.add(ERROR, f"the sum of {what} went from {before:g} to {after:g} in {pause:g} s: "
                                      "chunk counts are cumulative and must not go down")
    elif isinstance(read, TableRead):
        _daily(report, table, read, today, now, config)
        if isinstance(earlier, TableRead):
            drops = _went_down(earlier.rows, read.rows, table, today)
            if drops:
                report.add(ERROR, f"{len(drops)} of today's running totals went down between two reads {pause:g} s "
                                  f"apart, e.g. {drops[0]}: increase() takes a drop for a counter reset and counts "
                                  "the day again")


def render(reports: list[TableReport]) -> str:
    """The report as the terminal shows it, one block per table, then the verdict."""
    lines = []
    for report in reports:
        lines.append(f"{report.table} ({report.relation})")
        lines.extend(f"  serves:  {text}" for text in report.serves)
        rejects = ", ".join(f"{reason} {count}" for reason, count in report.rejected.items()) or "nothing"
        if report.serves:
            lines.append(f"  rejects: {rejects}")
        lines.extend(f"  {level.upper()}: {text}" for level, text in report.findings)
    errors = sum(level == ERROR for r in reports for level, _ in r.findings)
    warnings = sum(level == WARNING for r in reports for level, _ in r.findings)
    verdict = (f"{_counted(errors, 'error')} (each would empty a panel or silence an alert)" if errors
               else "OK: the exporter can serve every panel and alert from this database")
    lines.append(f"check-db: {verdict}; {_counted(warnings, 'warning')}")
    return "\n".join(lines)


def exit_code(reports: list[TableReport]) -> int:
    """1 when a finding would empty a panel or silence an alert, else 0."""
    return 1 if any(level == ERROR for r in reports for level, _ in r.findings) else 0


def written_ago(age: float) -> str:
    """How long ago a table was written, from its newest updated_at's age in seconds. A write seconds ahead of
    this clock is "just now"; minutes ahead is a clock that is off (the ETL's or the database's), said so."""
    if age > -60:
        return f"{max(age, 0.0) / 60:.0f} min ago"
    return f"{-age / 60:.0f} min in the future (a clock is off: see RagAnalyticsDatabaseClockSkew)"

"""PostgreSQL access: every SQL statement the exporter runs, and the one connection it holds."""

from __future__ import annotations

import logging
import math
import select
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import psycopg2
import psycopg2.extensions

from . import queries, tables
from .dberrors import first_line, is_connection_failure
from .redact import redact
from .tables import CHUNK_RETRIEVAL_STATS, Read

log = logging.getLogger(__name__)

# An updated_at later than both clocks (the exporter's and the database's) by more than this is not
# a clock's drift but a wrong timestamp (an ETL writing local time as UTC): it is left out of the
# table's freshness, where it would hide a stopped ETL until that time had passed. The row's counts
# are still used. Both clocks: an ETL stamping rows with the database's now() on a server whose clock
# runs ahead writes timestamps that are current there (the offset is exported and alerted on).
FUTURE_TOLERANCE_SECONDS = 300.0

TABLES = tuple(t.name for t in tables.ALL)
DAILY_TABLES = tuple(t.name for t in tables.DAILY)
# Tables read over the scoring window; the other daily tables are read for their newest day only.
WINDOWED_TABLES = tuple(t.name for t in tables.DAILY if t.read is Read.WINDOW)


class DatabaseUnavailable(Exception):
    """The server could not be reached or the connection broke: nothing was read."""


class QueryFailed(Exception):
    """One table's query failed (missing table, timeout, permission): other tables still read."""

    def __init__(self, table: str, reason: str):
        self.table = table
        self.reason = reason
        super().__init__(f"{table}: {reason}")


@dataclass(frozen=True)
class TableRead:
    """The rows read from one table, and the table's own freshness."""

    table: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    newest_date: date | None
    updated_at: datetime | None
    # Newest updated_at of the rows dated the day before `today`: tells whether that day is finished.
    previous_day_updated_at: datetime | None = None
    future_rows: int = 0  # rows of `rows` whose updated_at is in the future: kept out of the freshness
    null_updated_rows: int = 0  # rows of `rows` with no updated_at at all
    # Newest updated_at of the rows dated `today`: None before the ETL's first write of the day.
    today_updated_at: datetime | None = None


@dataclass(frozen=True)
class ChunkRead:
    """Database-side aggregates of chunk_retrieval_stats."""

    buckets: tuple[tuple[int, int, float, float], ...]  # (bucket, chunks, retrievals, citations)
    top: tuple[tuple[Any, ...], ...]  # (chunk_id, document_id, retrievals, citations, relevance)
    updated_at: datetime | None


@dataclass(frozen=True)
class DatabaseRead:
    """One refresh's read: each daily table's rows (or why it failed), the chunk aggregates when due,
    and the database's clock minus the exporter's at the read, in seconds."""

    tables: dict[str, TableRead | QueryFailed]
    chunks: ChunkRead | QueryFailed | None
    clock_offset_seconds: float


class Database:
    """Holds at most one connection and reads the aggregate tables in one read-only transaction."""

    def __init__(self, dsn: str, *, password: str | None, application_name: str,
                 connect_timeout: float, statement_timeout: float, lock_timeout: float):
        self._dsn = dsn
        self._password = password
        self._application_name = application_name
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._lock_timeout = lock_timeout
        self._conn: psycopg2.extensions.connection | None = None

    def _connect(self) -> psycopg2.extensions.connection:
        timeout_ms = int(self._statement_timeout * 1000)
        # Keepalives and tcp_user_timeout bound how long a dead network path can hold a
        # refresh: without them a dropped connection blocks until the kernel gives up
        # (about 15 minutes of retransmissions). Data unacknowledged for connect_timeout
        # means the path is dead; a long query leaves nothing unacknowledged, so it is safe.
        conn = psycopg2.connect(
            self._dsn,
            password=self._password,
            application_name=self._application_name,
            connect_timeout=max(2, math.ceil(self._connect_timeout)),
            keepalives=1,
            keepalives_idle=max(1, math.ceil(self._connect_timeout)),
            keepalives_interval=max(1, math.ceil(self._connect_timeout / 3)),
            keepalives_count=3,
            tcp_user_timeout=int(self._connect_timeout * 1000),
        )
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
        with conn.cursor() as cur:
            # SET through SQL rather than startup options so that poolers such as
            # PgBouncer, which refuse unknown startup parameters, still work.
            cur.execute(
                "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false),"
                " set_config('default_transaction_read_only', 'on', false)",
                (f"{timeout_ms}ms", f"{int(self._lock_timeout * 1000)}ms"),
            )
        conn.commit()
        return conn

    def cancel(self) -> None:
        """Ask the server to cancel the statement in flight, if any (safe from another thread)."""
        conn = self._conn
        if conn is not None and not conn.closed:
            try:
                conn.cancel()
            except psycopg2.Error:
                pass  # nothing running, or the connection is already gone

    def close(self) -> None:
        """Close the connection, if one is open."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def read(self, today: date, since: date, *, with_chunks: bool, top_chunks: int, now: datetime | None = None
             ) -> DatabaseRead:
        """Read every daily table (and the chunk aggregates when asked) in one transaction.

        Raises DatabaseUnavailable when the connection cannot be had or breaks; a
        failing table yields a QueryFailed in its place and the others are still read.
        `now` (the exporter's clock) and the database's now() set which updated_at values are in the future.
        """
        now = now or datetime.now(timezone.utc)
        try:
            conn = self._open()
            with conn.cursor() as cur:
                cur.execute(queries.CLOCK)
                [(database_now,)] = cur.fetchall()
                horizon = max(now, database_now) + timedelta(seconds=FUTURE_TOLERANCE_SECONDS)
                params = {"today": today, "previous": today - timedelta(days=1), "since": since, "horizon": horizon}
                reads: dict[str, TableRead | QueryFailed] = {}
                for table in DAILY_TABLES:
                    reads[table] = _guarded(cur, table, lambda t=table: _read_daily(cur, t, params))
                chunks = None
                if with_chunks:
                    chunks = _guarded(cur, CHUNK_RETRIEVAL_STATS.name, lambda: _read_chunks(cur, top_chunks, params))
            conn.rollback()  # read-only: nothing to commit; ends the snapshot promptly
            return DatabaseRead(reads, chunks, (database_now - now).total_seconds())
        except Exception as exc:  # noqa: BLE001 (re-raised as DatabaseUnavailable)
            # Whatever broke outside a table's savepoint (connect, session set-up, the connection
            # dropping mid-read) leaves nothing trustworthy: start afresh. Closing ends the transaction.
            self.close()
            raise DatabaseUnavailable(redact(first_line(exc), self._dsn, self._password)) from None

    def _open(self) -> psycopg2.extensions.connection:
        """The kept connection, or a new one; a kept one the server closed while idle is replaced at once.

        idle_session_timeout or a pooler may end the session between refreshes. That is not an
        outage, and must not fail a refresh: the server's last message and its end of the socket
        are waiting to be read, so an idle connection with anything to read is checked first.
        (A path that died silently has nothing to read; its first query fails once, after
        connect_timeout, instead of costing a second timeout here.)
        """
        conn = self._conn
        try:
            # The server's FATAL arrives as a notice, and the end of the socket raises on the next poll.
            for _ in range(3):
                if conn is None or conn.closed or not select.select([conn], [], [], 0)[0]:
                    break
                conn.poll()
        except psycopg2.Error as exc:
            if not is_connection_failure(exc, conn):
                raise
            log.info("the database closed the idle connection (%s); reconnecting", first_line(exc))
            self.close()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn


def _guarded(cur: psycopg2.extensions.cursor, table: str, read: Any) -> Any:
    """Run one table's reads inside a savepoint so a failure leaves the transaction usable."""
    cur.execute("SAVEPOINT table_read")
    try:
        result = read()
    except QueryFailed as failed:
        cur.execute("ROLLBACK TO SAVEPOINT table_read")
        return failed
    except Exception as exc:
        # Any error but a lost connection (SQLSTATE classes 08 and 57P) is this table's alone:
        # a timeout, a missing table, a full disk, or a value psycopg2 could not decode.
        if is_connection_failure(exc, cur.connection):
            raise
        cur.execute("ROLLBACK TO SAVEPOINT table_read")
        return QueryFailed(table, first_line(exc))
    cur.execute("RELEASE SAVEPOINT table_read")
    return result


def _read_daily(cur: psycopg2.extensions.cursor, table: str, params: dict[str, Any]) -> TableRead:
    declared = tables.daily(table)
    cur.execute(queries.FRESHNESS[table], params)
    if (oid := (cur.description or [])[0].type_code) != psycopg2.extensions.DATE.values[0]:
        # A view's timestamp would fail each row's day arithmetic; say which column, and what to do.
        cur.execute(queries.FORMAT_TYPE, (oid,))
        [(sql_type,)] = cur.fetchall()
        raise QueryFailed(table, f"column date is {sql_type}, not date: declare it date, or cast it in the view "
                                 "(date::date; for a timestamptz, (date AT TIME ZONE 'UTC')::date)")
    [(newest_date, updated_at, previous_day_updated_at, today_updated_at)] = cur.fetchall()  # an aggregate
    if declared.read is Read.WINDOW:
        params = params | {"since": min(params["since"], newest_date or params["since"])}
    cur.execute(queries.ROWS[table], params | {"newest": newest_date})
    fetched = cur.fetchall()
    return TableRead(
        table=table,
        columns=declared.read_columns,
        rows=tuple(row[:-2] for row in fetched),
        newest_date=newest_date,
        updated_at=updated_at,
        previous_day_updated_at=previous_day_updated_at,
        future_rows=sum(1 for row in fetched if row[-1]),
        null_updated_rows=sum(1 for row in fetched if row[-2]),
        today_updated_at=today_updated_at,
    )


def _read_chunks(cur: psycopg2.extensions.cursor, top_chunks: int, params: dict[str, Any]) -> ChunkRead:
    cur.execute(f"SELECT max(updated_at) FROM {CHUNK_RETRIEVAL_STATS.name} WHERE updated_at <= %(horizon)s", params)
    [(updated_at,)] = cur.fetchall()
    cur.execute(queries.CHUNK_BUCKETS, params)
    buckets = tuple(
        (int(bucket), int(chunks), float(retrievals or 0), float(citations or 0))
        for bucket, chunks, retrievals, citations in cur.fetchall()
    )
    top: tuple[tuple[Any, ...], ...] = ()
    if top_chunks > 0:
        cur.execute(queries.TOP_CHUNKS, params | {"limit": top_chunks})
        top = tuple(cur.fetchall())
    return ChunkRead(buckets=buckets, top=top, updated_at=updated_at)


def schema_sql() -> str:
    """The DDL of the seven tables, shipped with the package."""
    return resources.files(__package__).joinpath("sql/schema.sql").read_text(encoding="utf-8")


def init_db(dsn: str, password: str | None = None) -> None:
    """Create the seven tables and their indexes; safe to run again."""
    conn = psycopg2.connect(dsn, password=password, application_name="rag-analytics-exporter init-db")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(schema_sql())
    finally:
        conn.close()


def columns_of(table: str) -> tuple[str, ...]:
    """The columns the exporter reads from a daily table, in order."""
    return tables.daily(table).read_columns


def unreadable_tables(conn: psycopg2.extensions.connection, tables: tuple[str, ...]) -> dict[str, str]:
    """Of these tables, those this session cannot read, each with why: the refresh tolerates them, so must
    a reader that cannot skip a failed query (one error ends a REPEATABLE READ transaction's reads)."""
    with conn.cursor() as cur:
        cur.execute(queries.UNREADABLE, {"tables": list(tables)})
        return {name: "does not exist" if missing else "is not readable by this role"
                for name, missing in cur.fetchall()}


def stream_days(conn: psycopg2.extensions.connection, table: str, since: date, until: date
                ) -> Iterator[tuple[date, list[tuple[Any, ...]]]]:
    """(day, rows) of a daily table from since to until, oldest first, read through a server-side cursor.

    Only one day's rows are held at a time, so history of any length streams in constant memory.
    """
    statement = queries.STREAM[tables.daily(table).name]
    with conn.cursor(name=f"stream_{table}") as cur:
        cur.itersize = 10_000
        cur.execute(statement, {"since": since, "until": until})
        day: date | None = None
        rows: list[tuple[Any, ...]] = []
        for row in cur:
            if row[0] != day and rows:
                yield rows[0][0], rows
                rows = []
            day = row[0]
            rows.append(row)
        if rows:
            yield rows[0][0], rows

"""What check-db reads beyond a refresh: each relation's columns and types, duplicate keys, and the values a
refresh never selects (future dates, NULL updated_at, the largest relevance).

Its statements are in queries.py with the refresh's, under the same rules: identifiers only from tables.py's
declarations, values only as parameters, one read-only session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg2
import psycopg2.extensions

from . import queries, tables
from .db import unreadable_tables
from .tables import Table

_RELKINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}


@dataclass(frozen=True)
class Relation:
    """One of the seven names as the database has it."""

    name: str
    kind: str  # table, view, ...
    columns: dict[str, str]  # column -> type, in the relation's order


@dataclass(frozen=True)
class Values:
    """What a refresh never selects of a relation: counted over all its rows."""

    rows: int
    null_updated_at: int
    future_dates: int
    max_relevance: float | None  # chunk_retrieval_stats only
    duplicate_keys: int  # key values held by more than one row


def connect(dsn: str, password: str | None, application_name: str, connect_timeout: float,
            statement_timeout: float) -> psycopg2.extensions.connection:
    """A read-only session, as the exporter's, with a bound on every statement."""
    conn = psycopg2.connect(dsn, password=password, application_name=application_name,
                            connect_timeout=max(2, math.ceil(connect_timeout)))
    conn.set_session(readonly=True, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(statement_timeout * 1000)}ms",))
    return conn


def relations(conn: psycopg2.extensions.connection) -> tuple[dict[str, Relation], dict[str, str]]:
    """The seven relations this session reads, and those it cannot read, each with why."""
    unreadable = unreadable_tables(conn, tuple(t.name for t in tables.ALL))
    found: dict[str, Relation] = {}
    with conn.cursor() as cur:
        for table in tables.ALL:
            if table.name in unreadable:
                continue
            cur.execute(queries.COLUMNS, {"name": table.name})
            rows = cur.fetchall()
            found[table.name] = Relation(table.name, _RELKINDS.get(rows[0][2], "relation") if rows else "relation",
                                         {name: type_ for name, type_, _ in rows})
    return found, unreadable


def values(conn: psycopg2.extensions.connection, table: Table, today: date) -> Values:
    """Counts over every row of a relation that has the declared columns."""
    with conn.cursor() as cur:
        cur.execute(queries.VALUES[table.name], {"today": today})
        [(rows, null_updated_at, future_dates, max_relevance)] = cur.fetchall()
        cur.execute(queries.DUPLICATE_KEYS[table.name])
        [(duplicates,)] = cur.fetchall()
    return Values(int(rows), int(null_updated_at), int(future_dates), _float(max_relevance), int(duplicates))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

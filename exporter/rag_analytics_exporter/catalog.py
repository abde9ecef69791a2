"""What check-db reads beyond a refresh: each relation's columns and types, duplicate keys, and the values a
refresh never selects (future dates, NULL updated_at, the largest relevance).

db.py holds the refresh's SQL and has no room left under the module size bound; these statements follow its
rules: identifiers only from tables.py's declarations, values only as parameters, one read-only session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg2
import psycopg2.extensions

from . import tables
from .db import unreadable_tables
from .tables import Kind, Table

# The relation's columns as format_type() spells them, in order; to_regclass follows the search_path, so a
# view in a schema first on the role's search_path is found as the exporter would find it.
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), c.relkind
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attrelid = to_regclass(%(name)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_RELKINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}


def _has(table: Table, kind: Kind) -> bool:
    return any(c.kind is kind for c in table.columns)


_VALUES_SQL = {t.name: (
    "SELECT count(*), count(*) FILTER (WHERE updated_at IS NULL), "
    + ("count(*) FILTER (WHERE date > %(today)s), " if _has(t, Kind.DATE) else "0, ")
    + ("max(avg_relevance) FILTER (WHERE avg_relevance <> 'NaN')" if _has(t, Kind.RATIO) else "NULL")
    + f" FROM {t.name}"
) for t in tables.ALL}
_DUPLICATE_KEYS_SQL = {t.name: f"SELECT count(*) FROM (SELECT 1 FROM {t.name} GROUP BY {', '.join(t.key)} "
                                "HAVING count(*) > 1) AS duplicated" for t in tables.ALL}


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
            cur.execute(_COLUMNS_SQL, {"name": table.name})
            rows = cur.fetchall()
            found[table.name] = Relation(table.name, _RELKINDS.get(rows[0][2], "relation") if rows else "relation",
                                         {name: type_ for name, type_, _ in rows})
    return found, unreadable


def values(conn: psycopg2.extensions.connection, table: Table, today: date) -> Values:
    """Counts over every row of a relation that has the declared columns."""
    with conn.cursor() as cur:
        cur.execute(_VALUES_SQL[table.name], {"today": today})
        [(rows, null_updated_at, future_dates, max_relevance)] = cur.fetchall()
        cur.execute(_DUPLICATE_KEYS_SQL[table.name])
        [(duplicates,)] = cur.fetchall()
    return Values(int(rows), int(null_updated_at), int(future_dates), _float(max_relevance), int(duplicates))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

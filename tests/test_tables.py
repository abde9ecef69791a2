"""The table declarations of tables.py against what sql/schema.sql creates in a real PostgreSQL."""

from __future__ import annotations

import pytest

from conftest import query
from rag_analytics_exporter import builders, tables
from rag_analytics_exporter.builders import DAILY_BUILDERS
from rag_analytics_exporter.collectors import anomalies, latency, quality, usage
from rag_analytics_exporter.snapshot import Snapshot, frozen_mapping
from test_snapshot import NOW, golden_snapshot

# Every column of a table with the type PostgreSQL reports for it, in the table's order.
_COLUMNS_SQL = """
SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute
WHERE attrelid = to_regclass(%(table)s) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
"""
_KEY_SQL = """
SELECT a.attname
FROM pg_index AS i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute AS a ON a.attrelid = to_regclass(%(table)s) AND a.attnum = k.attnum
WHERE i.indrelid = to_regclass(%(table)s) AND i.indisprimary
ORDER BY k.position
"""


def test_schema_sql_creates_exactly_the_declared_tables(dsn: str) -> None:
    created = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
    assert [name for (name,) in created] == sorted(t.name for t in tables.ALL)


@pytest.mark.parametrize("table", tables.ALL, ids=lambda t: t.name)
def test_schema_sql_has_the_declared_columns_types_and_key(dsn: str, table: tables.Table) -> None:
    assert query(dsn, _COLUMNS_SQL, {"table": table.name}) == [(c.name, c.type) for c in table.columns]
    assert tuple(name for (name,) in query(dsn, _KEY_SQL, {"table": table.name})) == table.key


def test_a_column_name_has_one_kind_in_every_table() -> None:
    kinds: dict[str, set[tables.Kind]] = {}
    for table in tables.DAILY:
        for column in table.columns:
            kinds.setdefault(column.name, set()).add(column.kind)
    assert {name: k for name, k in kinds.items() if len(k) > 1} == {}


def test_an_undeclared_name_is_never_a_daily_table() -> None:
    for name in ("chunk_retrieval_stats", "pg_authid", "latency_metrics; DROP TABLE x"):
        with pytest.raises(KeyError):
            tables.daily(name)
    assert tables.daily("latency_metrics") is tables.LATENCY_METRICS


@pytest.mark.parametrize("table", tables.ALL, ids=lambda t: t.name)
def test_each_table_feeds_the_builder_and_collectors_it_declares(table: tables.Table) -> None:
    built = DAILY_BUILDERS.get(table.name, builders.build_chunks)
    assert built is getattr(builders, table.builder)
    golden = golden_snapshot()
    alone = Snapshot(
        sections=frozen_mapping({table.name: golden.sections[table.name]}),
        health=golden.health,
        refresh_interval=golden.refresh_interval,
        max_data_age=golden.max_data_age,
    )
    view = alone.view(NOW)
    publishing = {
        group.__name__.rsplit(".", 1)[-1]
        for group in (latency, usage, quality, anomalies)
        if any(family.samples for family in group.collect(alone, view))
    }
    assert publishing == set(table.collectors)

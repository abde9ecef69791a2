"""Every SQL statement the exporter's refresh and readers run, built once from the declarations of tables.py.

No identifier comes from a value, and values are always parameters. db.py runs them.
"""

from __future__ import annotations

from . import tables
from .tables import CHUNK_RETRIEVAL_STATS, Kind, Read, Table

# Daily tables: the scoring window (for z-scores and a stable top-N) plus the newest day; tables
# with no z-score read only their newest day. Every statement is built here, once, from the static
# declarations of tables.py: no identifier comes from a value, and values are always parameters.
FRESHNESS = {t.name: (
    "SELECT max(date) FILTER (WHERE date <= %(today)s), max(updated_at) FILTER (WHERE updated_at <= %(horizon)s),"
    " max(updated_at) FILTER (WHERE date = %(previous)s AND updated_at <= %(horizon)s),"
    f" max(updated_at) FILTER (WHERE date = %(today)s AND updated_at <= %(horizon)s) FROM {t.name}"
) for t in tables.DAILY}
# The last two columns say whether the row's updated_at is missing or in the future: such a row's
# counts are used, its timestamp is not. Tables with no z-score read their newest day and yesterday:
# yesterday's rows still get the ETL's last writes after midnight, which the counters must see.
ROWS = {t.name: (
    f"SELECT {', '.join(t.read_columns)}, updated_at IS NULL, COALESCE(updated_at > %(horizon)s, false)"
    f" FROM {t.name} "
    + ("WHERE date >= %(since)s OR date = %(newest)s ORDER BY date" if t.read is Read.WINDOW
       else "WHERE date = %(newest)s OR date = %(previous)s ORDER BY date")
) for t in tables.DAILY}
STREAM = {t.name: f"SELECT {', '.join(t.read_columns)} FROM {t.name} WHERE date BETWEEN %(since)s AND %(until)s"
               " ORDER BY date" for t in tables.DAILY}

# Chunk relevance buckets 0..9 are [0.0, 0.1) ... [0.9, 1.0]; negative buckets are
# rows that cannot be placed, by reason. Aggregated in the database: the table may
# hold 10^7 rows and none of them come to Python.
CHUNK_BUCKET_REASONS = {-1: "null_relevance", -2: "non_finite", -3: "out_of_range", -4: "negative_count",
                        -5: "future_updated_at"}
CHUNK_BUCKETS = f"""
SELECT bucket, count(*), sum(retrieval_count), sum(citation_count)
FROM (
    SELECT retrieval_count, citation_count,
        CASE
            WHEN updated_at > %(horizon)s THEN -5
            WHEN retrieval_count < 0 OR citation_count < 0 THEN -4
            WHEN avg_relevance IS NULL THEN -1
            WHEN avg_relevance = 'NaN'::float8 OR avg_relevance IN ('Infinity'::float8, '-Infinity'::float8) THEN -2
            WHEN avg_relevance < 0 OR avg_relevance > 1 THEN -3
            ELSE least(floor(avg_relevance * 10)::int, 9)
        END AS bucket
    FROM {CHUNK_RETRIEVAL_STATS.name}
) AS placed
GROUP BY bucket
ORDER BY bucket
"""
# Rows the bucket query rejects are filtered here too: ranked first and dropped afterwards,
# they would take top-N slots and fewer than limits.top_chunks chunks would be served.
TOP_CHUNKS = f"""
SELECT chunk_id, document_id, retrieval_count, citation_count, avg_relevance
FROM {CHUNK_RETRIEVAL_STATS.name}
WHERE chunk_id IS NOT NULL AND document_id IS NOT NULL AND retrieval_count >= 0 AND citation_count >= 0
    AND (avg_relevance IS NULL OR avg_relevance BETWEEN 0 AND 1) AND (updated_at IS NULL OR updated_at <= %(horizon)s)
ORDER BY retrieval_count DESC, chunk_id
LIMIT %(limit)s
"""


# A type's name, to say what a view's column is instead of what it should be.
FORMAT_TYPE = "SELECT format_type(%s, NULL)"
# The database's clock, as of the read transaction's start: the ETL may stamp updated_at with it.
CLOCK = "SELECT now()"


UNREADABLE = """
SELECT name, to_regclass(name) IS NULL
FROM unnest(%(tables)s::text[]) AS name
WHERE to_regclass(name) IS NULL OR NOT has_table_privilege(to_regclass(name), 'SELECT')
"""


# check-db's reads beyond a refresh (catalog.py).
# The relation's columns as format_type() spells them, in order; to_regclass follows the search_path, so a
# view in a schema first on the role's search_path is found as the exporter would find it.
COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), c.relkind
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attrelid = to_regclass(%(name)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

def _has(table: Table, kind: Kind) -> bool:
    return any(c.kind is kind for c in table.columns)


VALUES = {t.name: (
    "SELECT count(*), count(*) FILTER (WHERE updated_at IS NULL), "
    + ("count(*) FILTER (WHERE date > %(today)s), " if _has(t, Kind.DATE) else "0, ")
    + ("max(avg_relevance) FILTER (WHERE avg_relevance <> 'NaN')" if _has(t, Kind.RATIO) else "NULL")
    + f" FROM {t.name}"
) for t in tables.ALL}
DUPLICATE_KEYS = {t.name: f"SELECT count(*) FROM (SELECT 1 FROM {t.name} GROUP BY {', '.join(t.key)} "
                                "HAVING count(*) > 1) AS duplicated" for t in tables.ALL}

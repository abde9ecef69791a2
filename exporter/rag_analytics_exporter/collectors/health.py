"""The exporter's own health and the freshness of each table; always served, even when data is stale.

    # TYPE rag_exporter_up gauge
    rag_exporter_up 1.0
    # TYPE rag_exporter_last_refresh_success_timestamp_seconds gauge
    rag_exporter_last_refresh_success_timestamp_seconds 1.764e+09
    # TYPE rag_exporter_refresh_errors_total counter
    rag_exporter_refresh_errors_total{kind="connection"} 0.0
    # TYPE rag_table_updated_timestamp_seconds gauge
    rag_table_updated_timestamp_seconds{table="latency_metrics"} 1.764e+09
    # TYPE rag_exporter_rows_rejected gauge
    rag_exporter_rows_rejected{reason="negative_value",table="token_usage_daily"} 2.0
    # TYPE rag_anomaly_scored_date_complete gauge
    rag_anomaly_scored_date_complete{table="latency_metrics"} 1.0
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric

from .. import __version__, tables
from ..snapshot import LATENCY, USAGE, Snapshot, View, midnight_utc
from ..tables import TOTAL_COMPONENT
from ..validate import REASONS

_DAILY = frozenset(t.name for t in tables.DAILY)


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """Refresh health, per-table read status, row counts and table freshness."""
    health = snapshot.health
    info = InfoMetricFamily("rag_exporter_build", "Version of rag-analytics-exporter.")
    info.add_metric([], {"version": __version__})
    yield info

    up = GaugeMetricFamily("rag_exporter_up",
                           "1 when the last refresh read every table it tried, 0 when the database or a table "
                           "could not be read (or before the first refresh).")
    up.add_metric([], 1.0 if health.up else 0.0)
    yield up
    for name, value, text in (
        ("rag_exporter_last_refresh_success_timestamp_seconds", health.last_success,
         "When the last refresh that read every table finished (unix seconds)."),
        ("rag_exporter_last_refresh_attempt_timestamp_seconds", health.last_attempt,
         "When the last refresh, successful or not, finished (unix seconds)."),
        ("rag_exporter_refresh_duration_seconds", health.duration_seconds,
         "Wall time of the last refresh, database reads included."),
    ):
        if value is not None:
            family = GaugeMetricFamily(name, text)
            family.add_metric([], value)
            yield family
    if health.clock_offset_seconds is not None:
        offset = GaugeMetricFamily("rag_exporter_database_clock_offset_seconds",
                                   "The database's now() minus the exporter's clock, at the start of the last read "
                                   "that reached the database (seconds; positive when the database is ahead).")
        offset.add_metric([], health.clock_offset_seconds)
        yield offset
    interval = GaugeMetricFamily("rag_exporter_refresh_interval_seconds",
                                 "Configured interval between refreshes of the daily tables (refresh.interval).")
    interval.add_metric([], snapshot.refresh_interval)
    max_age = GaugeMetricFamily("rag_exporter_max_data_age_seconds",
                                "Data read longer ago than this is withheld from /metrics (refresh.max_data_age).")
    max_age.add_metric([], snapshot.max_data_age)
    yield from (interval, max_age)

    refreshes = CounterMetricFamily("rag_exporter_refreshes_total", "Refreshes run since start, failed ones included.")
    refreshes.add_metric([], health.refreshes)
    errors = CounterMetricFamily("rag_exporter_refresh_errors_total",
                                 "Refresh errors since start: kind=connection (database unreachable, nothing read) "
                                 "or kind=query (one table's query failed or was cancelled by a timeout).",
                                 labels=["kind"])
    for kind, count in sorted(health.errors.items()):
        errors.add_metric([kind], count)
    skipped = CounterMetricFamily("rag_exporter_refresh_skipped_total",
                                  "Scheduled refreshes skipped because the previous one was still running.")
    skipped.add_metric([], health.skipped)
    yield from (refreshes, errors, skipped)

    table_up = GaugeMetricFamily("rag_exporter_table_up",
                                 "1 when the last attempt to read this table succeeded, else 0.", labels=["table"])
    for table, ok in sorted(health.table_up.items()):
        table_up.add_metric([table], 1.0 if ok else 0.0)
    yield table_up

    sections = sorted(snapshot.sections.values(), key=lambda s: s.table)
    rows_read = GaugeMetricFamily("rag_exporter_rows_read",
                                  "Rows the last successful read of this table considered.", labels=["table"])
    rejected = GaugeMetricFamily("rag_exporter_rows_rejected",
                                 "Rows the last successful read of this table skipped as invalid, by reason "
                                 f"({', '.join(REASONS)}); every reason is served, at 0 until it occurs.",
                                 labels=["table", "reason"])
    updated = GaugeMetricFamily("rag_table_updated_timestamp_seconds",
                                "Newest updated_at of the table: when the ETL last wrote it (unix seconds).",
                                labels=["table"])
    today = GaugeMetricFamily("rag_table_today_updated_timestamp_seconds",
                              "Newest updated_at of the daily table's rows dated today (UTC), as of the last read: "
                              "the freshness of today's traffic. 0 before the ETL's first write of the day.",
                              labels=["table"])
    unusable = GaugeMetricFamily("rag_table_updated_at_unusable_rows",
                                 "Rows of the last read of this table whose updated_at cannot tell its freshness: "
                                 "reason=null (none), future (later than the exporter's and the database's clocks by "
                                 "over 5 minutes). Their counts are served.", labels=["table", "reason"])
    newest = GaugeMetricFamily("rag_table_newest_date_timestamp_seconds",
                               "Start (00:00 UTC) of the newest date present in the table, not in the future.",
                               labels=["table"])
    withheld = GaugeMetricFamily("rag_exporter_table_data_withheld",
                                 "1 when this table's data is older than refresh.max_data_age and not served.",
                                 labels=["table"])
    complete = GaugeMetricFamily("rag_anomaly_scored_date_complete",
                                 "1 when the ETL has finished the scored day in this table (it wrote a later day, "
                                 "or rewrote the day an hour or more after it ended), else 0 and its z-scores "
                                 "are withheld.", labels=["table"])
    for section in sections:
        rows_read.add_metric([section.table], section.rows_read)
        for reason in sorted(REASONS.keys() | section.rejected.keys()):
            rejected.add_metric([section.table, reason], section.rejected.get(reason, 0))
        if section.updated_at is not None:
            updated.add_metric([section.table], section.updated_at)
        if section.table in _DAILY:
            today.add_metric([section.table], section.today_updated_at or 0.0)
            for reason in ("future", "null"):
                unusable.add_metric([section.table, reason], section.updated_at_unusable.get(reason, 0))
        if section.newest_date is not None:
            newest.add_metric([section.table],
                              midnight_utc(section.newest_date))
        withheld.add_metric([section.table], 0.0 if section.table in view.fresh else 1.0)
    for scored in (view.section(LATENCY), view.section(USAGE)):  # in table order, as the loop above
        if scored is not None:
            complete.add_metric([scored.table], 1.0 if scored.data.scored_day_complete else 0.0)
    yield from (rows_read, rejected, updated, today, unusable, newest, withheld, complete)

    problem = GaugeMetricFamily("rag_exporter_data_problem",
                                "1 when the data lacks what the dashboards and alerts read, by reason "
                                f"(no_total_component: the newest day of latency_metrics has no component="
                                f"\"{TOTAL_COMPONENT}\", so the overview's stats and RagTrafficDrop see nothing).",
                                labels=["table", "reason"])
    latency = view.section(LATENCY)
    if latency is not None and latency.data.components:
        missing = all(c.component != TOTAL_COMPONENT for c in latency.data.components)
        problem.add_metric([latency.table, "no_total_component"], 1.0 if missing else 0.0)
    yield problem

"""RAG Exporter Health: the exporter replicas themselves, one series per replica (instance)."""

from __future__ import annotations

from typing import Any

from ..promql import by_deployment
from .common import grid, legend, m, new_dashboard, q, series, single, thresholds

REPLICA = legend("{{instance}}")


def build() -> Any:
    d = new_dashboard("exporter", "RAG Exporter Health",
                      "The exporter replicas: refreshes, errors, per-table reads and freshness, rejected rows, "
                      "scrape cost and memory. Unlike the other dashboards, every value here is one replica's.")
    rejected, read = (by_deployment("sum", f"max_over_time({m(metric)}[$__interval])", "instance", "table")
                      for metric in ("rag_exporter_rows_rejected", "rag_exporter_rows_read"))
    for panel in (
        single("Exporter up", "bool_yes_no", q(m("rag_exporter_up"), REPLICA, instant=True),
               thresholds=thresholds((None, "red"), (1, "green"))),
        single("Last successful refresh", "s",
               q(f"time() - {m('rag_exporter_last_refresh_success_timestamp_seconds')}", REPLICA, instant=True)),
        single("Last refresh took", "s", q(m("rag_exporter_refresh_duration_seconds"), REPLICA, instant=True)),
        single("Skipped refreshes", "short", q(m("rag_exporter_refresh_skipped_total"), REPLICA, instant=True)),
        single("Scrape duration", "s", q(m("scrape_duration_seconds"), REPLICA, instant=True)),
        single("Series", "short", q(m("scrape_samples_scraped"), REPLICA, instant=True)),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(series("Refresh duration", "s",
                            q(f"max_over_time({m('rag_exporter_refresh_duration_seconds')}[$__interval])", REPLICA)))
    # Counters: the exact change between steps and irate(), not increase() and rate(). Those two
    # extrapolate to the window's edges in PromQL and do not in MetricsQL (VictoriaMetrics), so the
    # same samples drew different values on the two (docs/deployment.md#metricsql-against-promql).
    # The change is between the last samples of this step and the step before (windows, not instant
    # lookups: the newest step lies up to a step ahead of now). A series with no sample a step back
    # began within the step, at 0: its value is the change.
    errors = f"last_over_time({m('rag_exporter_refresh_errors_total')}[$__interval])"
    before = f"last_over_time({m('rag_exporter_refresh_errors_total')}[$__interval] offset $__interval)"
    d = d.with_panel(series("Refresh errors", "short",
                            q(f"clamp_min({errors} - {before}, 0) or {errors} + 0", legend("{{instance}} {{kind}}")),
                            description="Refresh errors per step and kind; 0 across an exporter restart."))
    d = d.with_panel(grid("Tables",
                          q(m("rag_exporter_table_up"), instant=True, table_format=True),
                          q(f"time() - {m('rag_table_updated_timestamp_seconds')}", instant=True, table_format=True),
                          q(m("rag_exporter_rows_read"), instant=True, table_format=True),
                          q(m("rag_exporter_table_data_withheld"), instant=True, table_format=True),
                          description="Per replica and table: read status, time since the ETL's last write, rows "
                                      "read, withheld.",
                          units={"Value #B": "s"}, hide=("job",)))
    d = d.with_panel(series("Rows rejected by the last read", "short",
                            # 0 for tables with nothing rejected, which serve no rejected series.
                            q(f"{rejected} or 0 * {read}", legend("{{instance}} {{table}}")),
                            description="Invalid rows skipped, per replica and table (reasons in "
                                        "rag_exporter_rows_rejected)."))
    d = d.with_panel(series("Memory", "bytes",
                            q(f"max_over_time({m('process_resident_memory_bytes')}[$__interval])", REPLICA)))
    d = d.with_panel(series("CPU", "percentunit",
                            q(f"irate({m('process_cpu_seconds_total')}[$__rate_interval])", REPLICA)))
    return d

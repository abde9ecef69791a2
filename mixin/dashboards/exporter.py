"""RAG Exporter Health: the exporter replicas themselves, one series per replica (instance)."""

from __future__ import annotations

from typing import Any

from ..promql import by_deployment
from .common import NOW, PER_STEP, Column, about, grid, legend, m, new_dashboard, q, series, single, thresholds

REPLICA = legend("{{instance}}")


def build() -> Any:
    d = new_dashboard("exporter", "RAG Exporter Health",
                      "The exporter replicas: refreshes, errors, per-table reads and freshness, rejected rows, "
                      "scrape cost and memory. Unlike the other dashboards, every value here is one replica's.")
    rejected, read = (by_deployment("sum", f"max_over_time({m(metric)}[$__interval])", "instance", "table")
                      for metric in ("rag_exporter_rows_rejected", "rag_exporter_rows_read"))
    for panel in (
        single("Exporter up", "bool_yes_no", q(m("rag_exporter_up"), REPLICA, instant=True),
               description=about("Per replica: yes when its last refresh read every table it tried",
                                 "the exporter (rag_exporter_up)", NOW),
               thresholds=thresholds((None, "red"), (1, "green"))),
        single("Time since last successful refresh", "s",
               q(f"time() - {m('rag_exporter_last_refresh_success_timestamp_seconds')}", REPLICA, instant=True),
               description=about("Per replica: age of the end of its last fully successful refresh",
                                 "the exporter (rag_exporter_last_refresh_success_timestamp_seconds)", NOW)),
        single("Last refresh duration", "s", q(m("rag_exporter_refresh_duration_seconds"), REPLICA, instant=True),
               description=about("Per replica: wall time of its last refresh",
                                  "the exporter (rag_exporter_refresh_duration_seconds)", NOW)),
        single("Skipped refreshes since the exporter started", "locale",
               q(m("rag_exporter_refresh_skipped_total"), REPLICA, instant=True),
               description=about("Per replica: refreshes skipped because the previous one still ran, counted "
                                  "since the process started (a counter: it restarts at 0)",
                                  "the exporter (rag_exporter_refresh_skipped_total)", NOW)),
        single("Last scrape duration", "s", q(m("scrape_duration_seconds"), REPLICA, instant=True),
               description=about("Per replica: how long Prometheus' last scrape of /metrics took",
                                  "Prometheus (scrape_duration_seconds)", NOW)),
        single("Samples per scrape", "locale", q(m("scrape_samples_scraped"), REPLICA, instant=True),
               description=about("Per replica: samples (one per series) in the last scrape of /metrics",
                                  "Prometheus (scrape_samples_scraped)", NOW)),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(series("Refresh duration", "s",
                            q(f"max_over_time({m('rag_exporter_refresh_duration_seconds')}[$__interval])", REPLICA),
                            description=about("Per replica: the longest refresh wall time in each step",
                                              "the exporter (rag_exporter_refresh_duration_seconds)", PER_STEP)))
    # Counters: the exact change between steps and irate(), not increase() and rate(). Those two
    # extrapolate to the window's edges in PromQL and do not in MetricsQL (VictoriaMetrics), so the
    # same samples drew different values on the two (docs/deployment.md#metricsql-against-promql).
    # The change is between the last samples of this step and the step before (windows, not instant
    # lookups: the newest step lies up to a step ahead of now). A series with no sample a step back
    # began within the step, at 0: its value is the change.
    errors = f"last_over_time({m('rag_exporter_refresh_errors_total')}[$__interval])"
    before = f"last_over_time({m('rag_exporter_refresh_errors_total')}[$__interval] offset $__interval)"
    d = d.with_panel(series("Refresh errors per step", "locale",
                            q(f"clamp_min({errors} - {before}, 0) or {errors} + 0", legend("{{instance}} {{kind}}")),
                            description=about("Per replica and kind (connection, query): refresh errors in each "
                                              "step; 0 across an exporter restart",
                                              "the exporter (rag_exporter_refresh_errors_total)", PER_STEP)))
    d = d.with_panel(grid(
        "Tables",
        Column("Last read OK", m("rag_exporter_table_up"), "bool_yes_no"),
        Column("Time since the ETL wrote", f"time() - {m('rag_table_updated_timestamp_seconds')}", "s"),
        Column("Rows read", m("rag_exporter_rows_read"), "locale"),
        Column("Data withheld", m("rag_exporter_table_data_withheld"), "bool_yes_no"),
        description=about("Per replica and table: whether the last read succeeded, the age of the newest "
                          "updated_at, rows the last read considered, and whether the data is withheld as older "
                          "than max_data_age", "the exporter (rag_exporter_table_*, rag_table_*)", NOW),
        keys={"instance": "Replica", "table": "Table"}))
    d = d.with_panel(series("Rows rejected by the last read", "locale",
                            # 0 for tables with nothing rejected, which serve no rejected series.
                            q(f"{rejected} or 0 * {read}", legend("{{instance}} {{table}}")),
                            description=about("Per replica and table: invalid rows skipped (reasons in "
                                              "rag_exporter_rows_rejected)", "the exporter", PER_STEP)))
    d = d.with_panel(series("Memory (resident)", "bytes",
                            q(f"max_over_time({m('process_resident_memory_bytes')}[$__interval])", REPLICA),
                            description=about("Per replica: the largest resident memory in each step",
                                              "the exporter (process_resident_memory_bytes)", PER_STEP)))
    d = d.with_panel(series("CPU used (share of one core)", "percentunit",
                            q(f"irate({m('process_cpu_seconds_total')}[$__rate_interval])", REPLICA),
                            description=about("Per replica: CPU seconds per second between the last two samples",
                                              "the exporter (process_cpu_seconds_total)", PER_STEP)))
    return d

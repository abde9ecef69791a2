"""The alert and recording rules, written to alerting/rules/*.yml by `python -m mixin`.

Two kinds of alert, by what they are about:
* Business alerts (anomalies, SLOs, rates, cost, data freshness) are about a deployment: every
  exporter replica reads the same tables, so each expression takes one value per deployment
  (promql.one: max without the replica labels) and fires once, whatever the number of replicas.
* Exporter alerts are about replicas: a warning names the replica (instance) that is down or
  cannot read; the critical one fires when no replica of a deployment works, because then no
  business alert can fire for it.
Every number comes from mixin/config.py, written into the expressions and the descriptions alike.
"""

from __future__ import annotations

from typing import Any

from . import quality, slo
from .alerting import alert, number
from .config import CONFIG
from .promql import baseline_level, one, selector


def anomalies() -> list[dict[str, Any]]:
    """Yesterday against the 30 days before it, high and low side. The z-scores change once a day,
    so `for: 15m` only guards against a restart blip. The low side is a separate alert: its causes
    and runbook differ (a stage skipped, traffic gone)."""
    subjects = [
        ("RagComponentLatency", "rag_component_latency_zscore", "component", "Component latency was",
         "Mean latency of component {{ $labels.component }} yesterday was", "standard deviations",
         "a stage that answers this much faster is usually skipped, failing fast or returning empty results."),
        ("RagModelTokenUsage", "rag_model_tokens_zscore", "model", "Token usage of a model was",
         "Total tokens of model {{ $labels.model }} yesterday were", "standard deviations",
         "traffic moved away from the model, or its callers are failing."),
    ]
    rules = []
    for low in (False, True):
        for prefix, metric, variable, summary, opening, unit, low_cause in subjects:
            for severity, limit in (("warning", CONFIG.zscore_warning), ("critical", CONFIG.zscore_critical)):
                if low:
                    expr = f"{one(selector(metric))}\n  < -{number(limit)}\n"
                    description = (f'{opening} {{{{ $value | printf "%.1f" }}}} {unit} from its baseline, far below '
                                   f"it ({severity} below -{limit:g}): {low_cause}")
                else:
                    expr = f"{one(selector(metric))}\n  > {number(limit)}\n"
                    description = (f'{opening} {{{{ $value | printf "%.1f" }}}} {unit} above its 30-day baseline '
                                   f"({severity} above {limit:g}).")
                rules.append(alert(f"{prefix}{'LowAnomaly' if low else 'Anomaly'}", expr, "15m", severity,
                                   f"{summary} anomalously {'low' if low else 'high'} yesterday.", description,
                                   "rag-anomalies", (variable,)))
    return rules


def cost() -> list[dict[str, Any]]:
    """The daily budget is an exporter setting (budgets.*), exported as rag_model_cost_budget_usd, so
    it changes without editing PromQL. The runaway alert looks at the last hour, not the day so far,
    so a loop that starts burning tokens at 14:00 pages within about an hour instead of at midnight."""
    # the usual day of the week, in every anomaly.baseline mode (outside plain, _mean is yesterday's weekday's)
    baseline = baseline_level("rag_model_tokens_baseline_level", "rag_model_tokens_baseline_mean")
    return [
        alert("RagModelCostBudgetExceeded",
              f"{one(selector('rag_model_cost_usd'))}\n  > {one(selector('rag_model_cost_budget_usd'))}\n",
              "5m", "warning", "A model has spent more than its daily budget today.",
              'Model {{ $labels.model }} has cost {{ $value | printf "%.2f" }} USD today, above its daily budget '
              "(rag_model_cost_budget_usd).", "rag-usage", ("model",)),
        alert("RagModelTokenRunaway",
              f"(\n  model:rag_model_tokens:burn_rate1h_per_day\n    > ({baseline} * "
              f"{number(CONFIG.token_runaway_factor)})\n)\nand\n"
              f"(\n  {baseline}\n    >= {CONFIG.token_runaway_min_baseline_tokens}\n)\n",
              "10m", "critical", "A model is burning tokens far faster than its usual daily rate.",
              "Model {{ $labels.model }} used tokens at a rate of {{ $value | humanize }} per day over the last hour, "
              f"more than {CONFIG.token_runaway_factor:g} times its 30-day baseline daily level.",
              "rag-usage", ("model",)),
    ]


def exporter() -> list[dict[str, Any]]:
    """The exporter's replicas and the pipeline feeding them. Per replica (instance): a warning.
    Deployment-wide (no replica works): critical, since no business alert can fire for it then;
    alerting/alertmanager.yml lets the critical one inhibit the warnings of the same deployment."""
    up = selector("up")
    success = selector("rag_exporter_last_refresh_success_timestamp_seconds")
    interval = selector("rag_exporter_refresh_interval_seconds")
    bounds = (('table!="chunk_retrieval_stats"', CONFIG.daily_table_stale_seconds),
              ('table="chunk_retrieval_stats"', CONFIG.chunk_table_stale_seconds))
    stale = [f"(\n  time() - {one(selector('rag_table_updated_timestamp_seconds', matcher))}\n    > "
             f"{bound}\n)" for matcher, bound in bounds]
    intervals = CONFIG.refresh_failing_intervals
    return [
        alert("RagAnalyticsExporterDown", f"{up} == 0", "5m", "warning",
              "Prometheus cannot scrape a replica of the RAG analytics exporter.",
              "Target {{ $labels.instance }} of job {{ $labels.job }} has been down for 5 minutes; the deployment's "
              "other replicas, if any, still serve its metrics.", "rag-exporter", reason="scrape_failed"),
        alert("RagAnalyticsExporterDown", f"{one(up)} == 0", "5m", "critical",
              "No replica of the RAG analytics exporter can be scraped.",
              "Every target of job {{ $labels.job }} for this deployment has been down for 5 minutes; no RAG "
              "analytics alert can fire for it.", "rag-exporter", reason="scrape_failed"),
        alert("RagAnalyticsExporterDown", f"absent({up})", "5m", "critical",
              "Prometheus has no RAG analytics exporter target.",
              "No target of job {{ $labels.job }} exists in Prometheus (service discovery lost it, or it was never "
              "configured); no RAG analytics alert can fire.", "rag-exporter", deployment=False,
              reason="target_absent"),
        alert("RagAnalyticsRefreshFailing", f"{selector('rag_exporter_up')} == 0", "5m", "warning",
              "An exporter replica cannot read the analytics database.",
              "{{ $labels.instance }}: the last refreshes could not read every table (rag_exporter_up is 0); see "
              "rag_exporter_table_up and the exporter's log.", "rag-exporter", reason="read_failed"),
        alert("RagAnalyticsRefreshFailing", f"{one(selector('rag_exporter_up'))} == 0", "5m", "critical",
              "No exporter replica can read the analytics database.",
              "No replica of the exporter has read every table for 5 minutes (rag_exporter_up is 0 on all of "
              "them); the deployment's business metrics are withheld and its alerts cannot fire.",
              "rag-exporter", reason="read_failed"),
        alert("RagAnalyticsRefreshFailing",
              f"time() - {success}\n  > ({interval} * {intervals})\n", "5m", "warning",
              "An exporter replica has not completed a refresh for several intervals.",
              "{{ $labels.instance }}: the last successful refresh was {{ $value | humanizeDuration }} ago, more "
              f"than {intervals} refresh intervals.", "rag-exporter", reason="no_recent_success"),
        alert("RagAnalyticsRefreshFailing",
              f"time() - {one(success)}\n  > ({one(interval)} * {intervals})\n",
              "5m", "critical", "No exporter replica has completed a refresh for several intervals.",
              "The newest successful refresh of any replica was {{ $value | humanizeDuration }} ago, more than "
              f"{intervals} refresh intervals; the deployment's alerts cannot fire.", "rag-exporter",
              reason="no_recent_success"),
        # The freshest replica decides: one replica that cannot read does not make the data stale.
        alert("RagAnalyticsDataStale", f"{stale[0]}\nor\n{stale[1]}\n", "15m", "warning",
              "The analytics ETL has stopped writing a table.",
              f"Table {{{{ $labels.table }}}} was last written {{{{ $value | humanizeDuration }}}} ago (thresholds: "
              f"{hours(CONFIG.daily_table_stale_seconds)} for the daily tables, "
              f"{hours(CONFIG.chunk_table_stale_seconds)} for chunk_retrieval_stats); its numbers are frozen.",
              "rag-exporter"),
        # Rows with no updated_at at all (a view over a table without one) and none with one: the table's
        # age cannot be judged, so the rule above cannot fire for it, nor can RagTrafficDrop.
        alert("RagAnalyticsDataStale",
              f"{one(selector('rag_table_updated_at_unusable_rows', _NULL))} > 0\n"
              f"unless on ({', '.join(('job', *CONFIG.deployment_labels, 'table'))})\n"
              f"{one(selector('rag_table_updated_timestamp_seconds'))}\n", "15m", "warning",
              "The age of an analytics table cannot be judged: its rows have no updated_at.",
              "{{ $value }} rows of table {{ $labels.table }} have a NULL updated_at and none has one: whether the "
              "ETL still writes it cannot be told, so the stale-data and traffic-drop alerts cannot fire for it.",
              "rag-exporter", reason="freshness_unknown"),
        # What the dashboards and alerts read is missing from the data (the ETL's schema, not an outage): the
        # alerts that read it can never fire, which nothing else would say. A ticket; an hour lets the ETL's
        # first writes of a day come in any order.
        alert("RagAnalyticsDataProblem", f"{one(selector('rag_exporter_data_problem'))} > 0\n", "1h", "warning",
              "The analytics tables lack what some alerts read: those alerts cannot fire.",
              "Table {{ $labels.table }} has had the data problem {{ $labels.reason }} for an hour: the panels and "
              "alerts that read what is missing see nothing. The runbook says what the reason means and how to "
              "fix it.", "rag-exporter"),
        alert("RagAnalyticsDatabaseClockSkew",
              f"abs({selector('rag_exporter_database_clock_offset_seconds')}) > "
              f"{CONFIG.database_clock_offset_seconds}\n", "15m", "warning",
              "The analytics database's clock and the exporter's disagree.",
              "{{ $labels.instance }}: the database's now() is {{ $value | humanizeDuration }} away from the "
              f"exporter's clock (more than {CONFIG.database_clock_offset_seconds} s): the tables' freshness and the "
              "day a row belongs to are judged by different clocks. Fix NTP on the one that is off.", "rag-exporter"),
    ]


def recording() -> list[dict[str, Any]]:
    """Named level:metric:operations; one series per deployment, like the business alerts."""
    mean, parts, total = 'statistic="mean"', 'component!="total"', 'component="total"'
    return [
        # Tokens per model today (prompt + completion), one series per model and deployment.
        {"record": "model:rag_model_tokens:sum",
         "expr": f"sum without (token_type) ({one(selector('rag_model_tokens'))})"},
        # Each component's share of the end-to-end (component="total") mean latency.
        {"record": "component:rag_component_latency_seconds:share_of_total",
         "expr": f"{one(selector('rag_component_latency_seconds', mean, parts))}\n"
                 f"  / ignoring (component) group_left\n"
                 f"{one(selector('rag_component_latency_seconds', mean, total))}\n"},
        # Share of today's answers by number of citations (0, 1, 2, 3+).
        {"record": "citations:rag_citation_responses:ratio",
         "expr": f"{one(selector('rag_citation_responses'))}\n  / ignoring (citations) group_left\n"
                 f"sum without (citations) ({one(selector('rag_citation_responses'))})\n"},
    ]


_NULL = 'reason="null"'


def hours(seconds: int) -> str:
    return f"{seconds / 3600:g}h"


# File name -> (group name, rules, what the file holds).
FILES = {
    "anomalies.yml": ("rag-anomalies", anomalies, anomalies.__doc__),
    "live.yml": ("rag-live", slo.live_recording, slo.live_recording.__doc__),
    "slo.yml": ("rag-slo", lambda: slo.slo_recording() + slo.slo_alerts(), slo.slo_alerts.__doc__),
    "rates.yml": ("rag-rates", slo.live_alerts, slo.live_alerts.__doc__),
    "cost.yml": ("rag-cost", cost, cost.__doc__),
    "exporter.yml": ("rag-exporter", exporter, exporter.__doc__),
    "recording.yml": ("rag-recording", recording, recording.__doc__),
    "quality.yml": ("rag-quality", lambda: quality.recording() + quality.alerts(), quality.__doc__),
}


def render() -> dict[str, dict[str, Any]]:
    """Each rules file's document, keyed by file name, with the comment that heads it."""
    return {name: {"comment": " ".join((doc or "").split()),
                   "document": {"groups": [{"name": group, "rules": build()}]}}
            for name, (group, build, doc) in FILES.items()}

"""The mixin's one setting: which series are ours, how deployments and replicas are labelled, and every
number an alert, a recording rule, a description or a dashboard line uses.

Like a monitoring mixin's `_config` (node-mixin, kubernetes-mixin; grafana/jsonnet-libs'
filteringSelector, groupLabels and instanceLabels): the rules, their descriptions and
the dashboards' threshold lines are all built from these values, so a site changes a number here and
runs `python -m mixin`, and nothing else repeats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def duration(minutes: float) -> str:
    """A Prometheus duration for a whole number of minutes (or seconds, when below one): 90 -> 1h30m."""
    if minutes < 1:
        return f"{round(minutes * 60)}s"
    whole = round(minutes)
    days, rest = divmod(whole, 1440)
    hours, mins = divmod(rest, 60)
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{mins}m" if mins else "")
    return text or "0m"


@dataclass(frozen=True)
class BurnWindows:
    """One multiwindow burn-rate condition (SRE workbook ch. 5): both windows burn faster than factor."""

    long_minutes: int
    nominal_short_minutes: int
    factor: float
    severity: str  # critical pages a person, warning opens a ticket


@dataclass(frozen=True)
class MixinConfig:
    """Selectors, label conventions and every threshold shared by the rules and the dashboards."""

    # Every series the exporter serves carries this: it is the scrape job's name.
    selector: str = 'job="rag-analytics-exporter"'
    # A deployment is one RAG service in one environment, e.g. support-bot in production. Prometheus
    # attaches these as target labels (scrape config `labels:`, a ServiceMonitor's targetLabels); the
    # exporter never sets them itself. Every business alert fires once per deployment, and no
    # dashboard adds two deployments together.
    deployment_labels: tuple[str, ...] = ("environment", "rag_service")
    # Labels that tell the replicas of one deployment's exporter apart. Replicas read the same tables,
    # so their business series are equal: they are de-duplicated (max without these), never summed.
    replica_labels: tuple[str, ...] = ("instance", "pod")
    # The provisioned Prometheus datasource: the default of the dashboards' datasource variable.
    datasource_uid: str = "rag-prometheus"
    # Alert links lead here unless Prometheus has a grafana_url external label.
    grafana_url: str = "http://localhost:3000"
    runbook_url: str = "https://github.com/rag-analytics-exporter/rag-analytics-exporter/blob/main/docs/runbooks.md"

    # ── Today's running totals ───────────────────────────────────────────────────────────────────
    # How often the analytics ETL upserts today's rows. A windowed signal is an increase() between
    # two ETL writes, so every short window is at least min_window_writes cadences long: it then
    # spans two writes wherever it starts, with a cadence to spare for ETL jitter and scrape phase.
    etl_cadence_minutes: int = 5
    min_window_writes: int = 3

    # ── Availability SLO, per component (latency_metrics.request_count / error_count) ────────────
    availability_objective: float = 0.995  # of requests succeed ...
    slo_period_days: int = 30  # ... over this rolling period (the exporter's slo.period_days)
    # SRE workbook ch. 5: 2 % of the period's budget in 1h or 5 % in 6h pages; 10 % in 1d or in 3d
    # opens a ticket. Short windows are stretched to the ETL's minimum window (see short_minutes).
    burn_windows: tuple[BurnWindows, ...] = (
        BurnWindows(60, 5, 14.4, "critical"), BurnWindows(360, 30, 6, "critical"),
        BurnWindows(1440, 120, 3, "warning"), BurnWindows(4320, 360, 1, "warning"))
    # A burn-rate alert needs this many requests in its long window: a ratio over a handful of
    # requests is noise (at 100 requests, 14.4 x 0.5 % is 7.2 errors) ...
    slo_min_requests: int = 100
    # ... and enough that its bound is this many errors. At 100 requests the 1x ticket's bound is half
    # an error, so a healthy component's chance errors crossed it whenever the long window held little
    # data (a Prometheus started hours ago records its copies since then): 10 errors is 2,000 requests.
    slo_min_errors_at_bound: int = 10

    # ── Latency objective, per component (latency_metrics.avg_time_ms) ───────────────────────────
    # Percentiles cannot be windowed, so the objective is on the windowed mean: it stays within a
    # factor of the component's 30-day baseline level (rag_component_latency_baseline_level_seconds).
    latency_page_factor: float = 1.5
    latency_page_long_minutes: int = 30
    latency_ticket_factor: float = 1.2
    latency_ticket_long_minutes: int = 360
    latency_ticket_short_minutes: int = 60
    latency_min_requests: int = 100  # in the long window

    # ── Negative feedback (feedback_daily), over a window ────────────────────────────────────────
    feedback_negative_ratio: float = 0.3
    feedback_long_minutes: int = 30
    feedback_min_events: int = 50  # in the long window

    # ── Traffic against the same window a week earlier (component total: the whole request) ──────
    traffic_component: str = "total"
    traffic_window_minutes: int = 15
    traffic_drop_ratio: float = 0.6  # pages below this share of last week's traffic ...
    traffic_min_requests: int = 100  # ... when last week's window had at least this many requests

    # ── Token runaway (token_usage_daily) ────────────────────────────────────────────────────────
    # The last hour's burn, scaled to a day, above this many times the model's baseline daily tokens.
    # Peak hours run at about 2x the daily average, so 4 leaves headroom.
    token_runaway_factor: float = 4
    token_runaway_min_baseline_tokens: int = 100_000

    # ── Yesterday's z-scores (the old design's medium / high) ────────────────────────────────────
    zscore_warning: float = 3
    zscore_critical: float = 6

    # ── Quality SLOs (mixin/quality.py), on the exporter's counters and its SLO-period sums ───────
    # Answers that cite at least one retrieved source (citation_daily). The demo's healthy days leave
    # 12 % uncited. A dropped index or a retriever returning nothing leaves nearly every answer uncited
    # within minutes, and a rollback fixes it: that fast burn pages. The budget is large, so the
    # availability SLO's 14.4x cannot happen (100 % uncited is 1 / budget = 6.7x): the page is at 4x.
    citation_objective: float = 0.85
    citation_burn_windows: tuple[BurnWindows, ...] = (
        BurnWindows(60, 5, 4, "critical"), BurnWindows(360, 30, 2, "warning"), BurnWindows(4320, 360, 1, "warning"))
    # Feedback that is not negative (feedback_daily): the old design's FEEDBACK_THRESHOLD, 20 % negative,
    # is the budget. Feedback is sparse and comes late, so this SLO only opens tickets, at 1x over hours
    # (a day at 25 % negative tickets, one at 10 % does not); RagNegativeFeedbackHigh pages the fast case.
    feedback_objective: float = 0.8
    feedback_burn_windows: tuple[BurnWindows, ...] = (BurnWindows(360, 60, 1, "warning"),)
    # Answers, or feedback events, that a quality burn-rate alert needs in its long window: at the
    # feedback ticket's bound that is 20 negative events, at the citation page's 60 uncited answers.
    quality_min_events: int = 100

    # ── The pipeline and the exporter ────────────────────────────────────────────────────────────
    daily_table_stale_seconds: int = 7200  # the ETL upserts today's rows through the day
    # The database's clock against the exporter's: past this, freshness and "today" disagree between them
    # (NTP keeps clocks within milliseconds; the exporter tolerates 5 minutes before a timestamp is "future").
    database_clock_offset_seconds: int = 60
    chunk_table_stale_seconds: int = 93600  # chunk_retrieval_stats may be written by a slower job
    refresh_failing_intervals: int = 3

    # How long a windowed alert waits before firing. None for the pages: as in the SRE workbook's
    # pairs (and Sloth's rules), the short window already confirms the long one, and every minute of
    # waiting adds to the ETL's own delay of up to one cadence.
    for_page: str = ""
    for_ticket: str = "15m"
    for_traffic: str = "5m"


    @property
    def min_window_minutes(self) -> int:
        return self.etl_cadence_minutes * self.min_window_writes

    def short_minutes(self, nominal: int) -> int:
        """A short window, stretched to span at least two ETL writes."""
        return max(nominal, self.min_window_minutes)

    @property
    def error_budget(self) -> float:
        return round(1 - self.availability_objective, 10)

    def slo_min_requests_at(self, factor: float) -> int:
        """The requests a burn-rate pair's long window needs, at this factor of the budget."""
        at_bound = math.ceil(round(self.slo_min_errors_at_bound / (factor * self.error_budget), 6))
        return max(self.slo_min_requests, at_bound)


CONFIG = MixinConfig()

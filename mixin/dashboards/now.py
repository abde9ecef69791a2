"""The "now" rows of the overview and latency dashboards: the windowed signals the SLO alerts read.

Every number here is a recording rule of alerting/rules/live.yml or slo.yml (one series per
deployment already), over a window of today's running totals, so it moves within minutes of an
incident, where the day views below it are diluted by every hour before. Bounds drawn on the panels
are the alerts' own, from mixin/config.py.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db

from .. import slo
from ..config import CONFIG, duration
from .common import (
    LIVE,
    SLO_WINDOW,
    WEEK_AGO,
    about,
    hourly_level,
    legend,
    link,
    m,
    q,
    series,
    single,
    thresholds,
    to_component,
)

SHORT = CONFIG.min_window_minutes
BUDGET = CONFIG.error_budget
TOTAL = f'component="{CONFIG.traffic_component}"'
PAGE_FACTORS = sorted((p.factor for p in CONFIG.burn_windows if p.severity == "critical"), reverse=True)


def _live(record: str, *matchers: str) -> str:
    """A recorded series over the graph's steps (it exists only where the rules ran live)."""
    return f"max_over_time({m(record, *matchers)}[$__interval])"


def _now(record: str, *matchers: str) -> str:
    return f"last_over_time({m(record, *matchers)}[5m])"


def overview_row(d: Any) -> Any:
    """Six stats of the service end to end, and its traffic against a week and a day earlier."""
    latency = link("latency", "Component latency now", component=CONFIG.traffic_component)
    window = duration(SHORT)
    d = d.with_row(db.Row(f"Now (last {window})"))
    for panel in (
        single(f"Errors, last {window}", "percentunit", q(_now(slo.sli(SHORT), TOTAL), legend(), instant=True),
               description=about(f"Failed / all end-to-end requests (component total) over the last {window} "
                                 f"({slo.sli(SHORT)}); orange above the budget ({BUDGET:.1%}), red above "
                                 f"{PAGE_FACTORS[0]:g}x it, the fast-burn page's bound", "recording rule", LIVE),
               thresholds=thresholds((None, "green"), (BUDGET, "orange"), (PAGE_FACTORS[0] * BUDGET, "red")),
               links=[latency]),
        single("Error budget burn rate now", "none",
               q(_now("slo:current_burn_rate:ratio", TOTAL), legend(), instant=True),
               description=about(f"How fast end-to-end failures spend the {CONFIG.slo_period_days}-day error budget "
                                 f"over the last {window}: 1 spends it exactly in the period; the pages fire at "
                                 f"{' and '.join(f'{f:g}' for f in PAGE_FACTORS)} (slo:current_burn_rate:ratio)",
                                 "recording rule", LIVE),
               thresholds=thresholds((None, "green"), (1, "orange"), (PAGE_FACTORS[-1], "red")), links=[latency]),
        single(f"Error budget left, {CONFIG.slo_period_days} days", "percentunit",
               q(_now("slo:period_error_budget_remaining:ratio", TOTAL), legend(), instant=True),
               description=about(f"Share of the {CONFIG.slo_period_days}-day error budget "
                                 f"({CONFIG.availability_objective:.1%} of requests succeed) not yet spent, exact "
                                 "from the period's counts (rag_component_period_requests and _errors)",
                                 "recording rule", SLO_WINDOW),
               thresholds=thresholds((None, "red"), (0, "orange"), (0.25, "green")), links=[latency]),
        single(f"Requests against a week ago, last {duration(slo.traffic_window())}", "percentunit",
               q(_now(slo.traffic_ratio("1w"), TOTAL), legend(), instant=True),
               description=about(f"End-to-end requests of the last {duration(slo.traffic_window())} over the same "
                                 f"window a week earlier; red below {CONFIG.traffic_drop_ratio:.0%}, where "
                                 "RagTrafficDrop pages. Empty until a week of live scrapes exists",
                                 "recording rule", WEEK_AGO),
               thresholds=thresholds((None, "red"), (CONFIG.traffic_drop_ratio, "green")), links=[latency]),
        single(f"Mean latency, last {window}", "s",
               q(_now(slo.latency_mean(SHORT), TOTAL), legend(), instant=True),
               description=about(f"Mean end-to-end time of the requests of the last {window}: their total time "
                                 f"over their number ({slo.latency_mean(SHORT)})", "recording rule", LIVE),
               links=[latency]),
        single(f"Negative feedback, last {duration(CONFIG.feedback_long_minutes)}", "percentunit",
               q(_now(slo.feedback_ratio(CONFIG.feedback_long_minutes)), legend(), instant=True),
               description=about(f"Negative / all feedback of the last {duration(CONFIG.feedback_long_minutes)}; "
                                 f"red above {CONFIG.feedback_negative_ratio:.0%}, where RagNegativeFeedbackHigh "
                                 "pages", "recording rule", LIVE),
               thresholds=thresholds((None, "green"), (CONFIG.feedback_negative_ratio, "red")),
               links=[link("feedback", "User feedback")]),
    ):
        d = d.with_panel(panel)
    requests = slo.traffic_increase()
    return d.with_panel(series(
        f"Requests per {duration(slo.traffic_window())}, against a week and a day earlier", "short",
        q(_live(requests, TOTAL), legend("now")),
        q(f"max_over_time({m(requests, TOTAL)}[$__interval] offset 1w)", legend("a week earlier")),
        q(f"max_over_time({m(requests, TOTAL)}[$__interval] offset 1d)", legend("a day earlier")),
        description=about(f"End-to-end requests in each {duration(slo.traffic_window())} window, and the same "
                          "window a week and a day earlier (dashed): RagTrafficDrop compares the first two",
                          "recording rule", WEEK_AGO),
        dashed=".*earlier", w=24, h=7, links=[latency]))


def latency_row(d: Any, selected: str) -> Any:
    """Per component: windowed mean against its page bound, error ratio, burn rates and budget left."""
    window = duration(SHORT)
    factor = CONFIG.latency_page_factor
    # The baseline is an exporter gauge with backfilled history (one sample an hour), so over time it is
    # read as the day views read it.
    baseline = hourly_level("rag_component_latency_baseline_level_seconds",
                            "rag_component_latency_baseline_mean_seconds", selected)
    d = d.with_row(db.Row(f"Now (last {window})"))
    lines = [(f * BUDGET, colour) for f, colour in zip(PAGE_FACTORS, ("red", "orange"), strict=False)]
    for panel in (
        series(f"Mean latency per component, last {window}, against its page bound", "s",
               q(_live(slo.latency_mean(SHORT), selected), legend("{{component}}")),
               q(f"{factor:g} * {baseline}", legend(f"{{{{component}}}} bound ({factor:g}x baseline)")),
               description=about(f"Each component's mean time over the last {window}, and {factor:g} times its "
                                 "30-day baseline level (dashed), where RagComponentLatencyHigh pages once the "
                                 f"{duration(CONFIG.latency_page_long_minutes)} mean passes it too",
                                 "recording rule", LIVE),
               dashed=".*bound.*", links=[to_component()]),
        series(f"Error ratio per component, last {window}", "percentunit",
               q(_live(slo.sli(SHORT), selected), legend("{{component}}")),
               description=about(f"Failed / all requests of the last {window} per component; the dashed lines are "
                                 f"{' and '.join(f'{f:g}' for f in PAGE_FACTORS)} times the error budget "
                                 f"({BUDGET:.1%}), the bounds of the two pages", "recording rule", LIVE),
               lines=lines, links=[to_component()]),
        series("Error budget burn rate per component, 1h and 6h", "none",
               q(f"{_live(slo.sli(60), selected)} / {BUDGET:g}", legend("{{component}} 1h")),
               q(f"{_live(slo.sli(360), selected)} / {BUDGET:g}", legend("{{component}} 6h")),
               description=about("The error ratio of the pages' long windows over the error budget: 1 spends the "
                                 f"{CONFIG.slo_period_days}-day budget exactly in the period", "recording rule", LIVE),
               lines=[(f, colour) for f, colour in zip(PAGE_FACTORS, ("red", "orange"), strict=False)],
               links=[to_component()]),
        series(f"Error budget left per component, {CONFIG.slo_period_days} days", "percentunit",
               q(_live("slo:period_error_budget_remaining:ratio", selected), legend("{{component}}")),
               description=about(f"Share of each component's {CONFIG.slo_period_days}-day error budget not yet "
                                 "spent, exact from the period's counts", "recording rule", SLO_WINDOW),
               lines=[(0, "red")], links=[to_component()]),
    ):
        d = d.with_panel(panel)
    return d

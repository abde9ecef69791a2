"""SLOs on answer quality: answers that cite a source, and feedback that is not negative.

Same shape as the availability SLO (mixin/slo.py, after Sloth): slo:sli_error:ratio_rate<window> with the
labels slo and slo_window, metadata series for the objective, the budget and the budget left over the
SLO period, and multiwindow burn-rate alerts gated on volume (SRE workbook, chapter 5).

The windows read the exporter's counters (rag_responses_total, rag_citation_responses_total,
rag_feedback_total: monotonic within a process, 0 after a restart, not reset by a new day). Each
replica's increase is taken first, then de-duplicated (promql.one), never summed: replicas count the
same rows. The budget left is exact from the exporter's SLO-period sums of the tables
(rag_citation_period_*, rag_feedback_period_events), as availability's is from rag_component_period_*:
a 30-day increase() of the counters would need 30 days of their scrapes, which neither a new
Prometheus nor a backfill has.

The quality budgets are large (15 %, 20 %), so a burn rate cannot exceed 1 / budget: the workbook's
14.4x does not exist here, and each SLO has its own pairs (mixin/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .alerting import alert, number, percent
from .config import CONFIG, BurnWindows, duration
from .promql import REPLICA, one, selector

CITATIONS, FEEDBACK = "rag-answer-citations", "rag-feedback-not-negative"


def _without(label: str, expr: str) -> str:
    """One series per deployment, with label dropped as well as the replica labels."""
    return f"max without ({REPLICA}, {label}) ({expr})"


@dataclass(frozen=True)
class QualitySlo:
    """One quality SLO: its numbers (mixin/config.py), its words, and the PromQL of its errors and events."""

    name: str
    title: str  # on the dashboards
    objective: float
    windows: tuple[BurnWindows, ...]
    alert_name: str
    summary: str  # what goes wrong, as an alert's summary opens
    events: str  # what is counted
    bad: str  # what the bad ones do
    volume: str  # the recorded event count of a long window, without the window
    errors_expr: str  # PromQL of the bad events over WINDOW, one series per deployment
    total_expr: str  # ... and of all events
    period_errors: str  # the exporter's SLO-period sums
    period_total: str
    period_families: tuple[str, ...]
    dashboard: str

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 10)

    def pairs(self, severity: str) -> list[tuple[int, int, float]]:
        """(long, short, factor) of each pair of this severity: the short window stretched to span two ETL
        writes, the long one a cadence longer than it (as mixin/slo.py's)."""
        found = []
        for p in self.windows:
            if p.severity == severity:
                short = CONFIG.short_minutes(p.nominal_short_minutes)
                found.append((max(p.long_minutes, short + CONFIG.etl_cadence_minutes), short, p.factor))
        return found

    def windows_used(self) -> list[int]:
        return sorted({w for s in ("critical", "warning") for long, short, _ in self.pairs(s) for w in (long, short)})

    def errors(self, window: int) -> str:
        return self.errors_expr.replace("WINDOW", duration(window))

    def total(self, window: int) -> str:
        return self.total_expr.replace("WINDOW", duration(window))


_UNCITED = selector("rag_citation_responses_total", 'citations="0"')
_NEGATIVE = selector("rag_feedback_total", 'sentiment="negative"')
SLOS = (
    QualitySlo(CITATIONS, "Cited answers", CONFIG.citation_objective, CONFIG.citation_burn_windows,
               "RagCitationErrorBudgetBurn", "Answers cite no retrieved source", "answers",
               "cite no retrieved source", "deployment:rag_responses:increase",
               _without("citations", f"increase({_UNCITED}[WINDOW])"),
               one(f"increase({selector('rag_responses_total')}[WINDOW])"),
               one(selector("rag_citation_period_uncited_responses")), one(selector("rag_citation_period_responses")),
               ("rag_citation_period_uncited_responses", "rag_citation_period_responses"), "rag-retrieval"),
    QualitySlo(FEEDBACK, "Non-negative feedback", CONFIG.feedback_objective, CONFIG.feedback_burn_windows,
               "RagFeedbackErrorBudgetBurn", "Users rate answers negatively", "feedback events", "are negative",
               "deployment:rag_feedback_events:increase",
               _without("sentiment", f"increase({_NEGATIVE}[WINDOW])"),
               one(f"sum without (sentiment) (increase({selector('rag_feedback_total')}[WINDOW]))"),
               _without("sentiment", selector("rag_feedback_period_events", 'sentiment="negative"')),
               one(f"sum without (sentiment) ({selector('rag_feedback_period_events')})"),
               ("rag_feedback_period_events",), "rag-feedback"),
)


def sli(window: int) -> str:
    return f"slo:sli_error:ratio_rate{duration(window)}"


def recording() -> list[dict[str, Any]]:
    """Per quality SLO: its error ratio over every window its alerts read, the event count of each long
    window (the volume gate), and its metadata with the budget left over the SLO period."""
    rules: list[dict[str, Any]] = []
    for slo in SLOS:
        label = f'slo="{slo.name}"'
        for window in slo.windows_used():
            rules.append({"record": sli(window),
                          "expr": f"{slo.errors(window)}\n/\n{slo.total(window)}\n",
                          "labels": {"slo": slo.name, "slo_window": duration(window)}})
        for window in sorted({long for s in ("critical", "warning") for long, _, _ in slo.pairs(s)}):
            rules.append({"record": f"{slo.volume}{duration(window)}", "expr": slo.total(window)})
        shortest = min(slo.windows_used())
        labels = {"slo": slo.name}
        rules += [
            {"record": "slo:objective:ratio", "expr": f"vector({number(slo.objective)})", "labels": labels},
            {"record": "slo:error_budget:ratio", "expr": f"vector({number(slo.budget)})", "labels": labels},
            {"record": "slo:time_period:days", "expr": f"vector({CONFIG.slo_period_days})", "labels": labels},
            {"record": "slo:current_burn_rate:ratio",
             "expr": f"max without (slo_window) ({sli(shortest)}{{{label}}}) / {number(slo.budget)}"},
            {"record": "slo:period_burn_rate:ratio",
             "expr": f"(\n{slo.period_errors}\n/\n{slo.period_total}\n) / {number(slo.budget)}\n", "labels": labels},
            {"record": "slo:period_error_budget_remaining:ratio",
             "expr": f"1 - slo:period_burn_rate:ratio{{{label}}}", "labels": labels},
        ]
    return rules


def _budget_alert(slo: QualitySlo, severity: str) -> dict[str, Any]:
    label = f'slo="{slo.name}"'
    pairs = slo.pairs(severity)
    conditions = []
    for long, short, factor in pairs:
        bound = number(factor * slo.budget)
        conditions.append(f"(\n  max without (slo_window) ({sli(long)}{{{label}}} > {bound})\n"
                          f"  and\n  max without (slo_window) ({sli(short)}{{{label}}} > {bound})\n"
                          f"  and ignoring (slo)\n  {slo.volume}{duration(long)} >= {CONFIG.quality_min_events}\n)")
    text = " or ".join(f"{duration(long)} and {duration(short)} above {percent(factor * slo.budget)}, "
                       f"{factor:g}x the budget" for long, short, factor in pairs)
    page = severity == "critical"
    return alert(
        slo.alert_name, "\nor\n".join(conditions) + "\n", CONFIG.for_page if page else CONFIG.for_ticket, severity,
        f"{slo.summary} {'far too often, now' if page else 'too often, for hours'}.",
        f"{{{{ $value | humanizePercentage }}}} of the {slo.events} in the alert's long window {slo.bad} ({text}; "
        f"at least {CONFIG.quality_min_events} {slo.events} in the long window). At this rate the "
        f"{CONFIG.slo_period_days}-day budget (at most {percent(slo.budget)} of the {slo.events} {slo.bad}) is spent "
        f"in {CONFIG.slo_period_days / min(f for _, _, f in pairs):g} days or less.",
        slo.dashboard, slo=slo.name)


def alerts() -> list[dict[str, Any]]:
    """Burn-rate alerts of the quality SLOs: a page only where a fast burn is plausible and a person can act on it
    (an answer path that stops citing), tickets for the slow burns and for feedback, which is sparse and late."""
    return [_budget_alert(slo, severity) for slo in SLOS for severity in ("critical", "warning")
            if slo.pairs(severity)]

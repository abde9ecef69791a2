"""Today's running totals as windowed signals, the SLOs built on them, and the alerts that page within minutes.

The exporter serves today's running totals (requests, errors, mean latency, feedback, tokens), which
the ETL upserts every few minutes and which restart at 00:00 UTC. Read as counters, increase()
turns them into windows: the restart is a counter reset. Every signal here is a ratio or a mean of
two increases over the same window, so increase()'s extrapolation cancels out, and every window is
at least CONFIG.min_window_minutes long, so that it spans two ETL writes. Replicas serve equal
totals: each replica's increase is taken first, then de-duplicated (promql.one), never summed.

The recording rules follow Sloth's shape: slo:sli_error:ratio_rate<window> with the labels slo and
slo_window, metadata series for the objective, the budget and the budget left, and one page and one
ticket alert, each the OR of two multiwindow pairs (SRE workbook, chapter 5).
"""

from __future__ import annotations

from typing import Any

from .alerting import alert, number, percent
from .config import CONFIG, duration
from .promql import baseline_level, one, selector

SLO = "rag-component-availability"
_SLO = f'slo="{SLO}"'
_MEAN = 'statistic="mean"'
_POSITIVE = 'sentiment="positive"'
_NEGATIVE = 'sentiment="negative"'
_SENTIMENTS = 'sentiment=~"positive|negative"'
_LATENCY_TABLE = 'table="latency_metrics"'


def _w(minutes: int) -> str:
    return duration(minutes)


def _pair(long: int, nominal_short: int) -> tuple[int, int]:
    """A (long, short) window pair: the short one stretched to span two ETL writes, the long one kept a
    cadence longer than it (a slow ETL must not turn the pair around)."""
    short = CONFIG.short_minutes(nominal_short)
    return max(long, short + CONFIG.etl_cadence_minutes), short


def _pairs(severity: str) -> list[tuple[int, int, float]]:
    """(long, short, factor) of each burn-rate pair of this severity."""
    return [(*_pair(p.long_minutes, p.nominal_short_minutes), p.factor)
            for p in CONFIG.burn_windows if p.severity == severity]


def _slo_windows() -> list[int]:
    return sorted({w for severity in ("critical", "warning") for long, short, _ in _pairs(severity)
                   for w in (long, short)})


def _latency_windows() -> dict[str, tuple[int, int]]:
    return {"critical": _pair(CONFIG.latency_page_long_minutes, CONFIG.min_window_minutes),
            "warning": _pair(CONFIG.latency_ticket_long_minutes, CONFIG.latency_ticket_short_minutes)}


def feedback_windows() -> tuple[int, int]:
    return _pair(CONFIG.feedback_long_minutes, CONFIG.min_window_minutes)


def traffic_window() -> int:
    return CONFIG.short_minutes(CONFIG.traffic_window_minutes)


def _volume_windows() -> list[int]:
    """Windows whose request count gates an alert (long windows)."""
    longs = {long for severity in ("critical", "warning") for long, _, _ in _pairs(severity)}
    longs |= {long for long, _ in _latency_windows().values()}
    return sorted(longs)


def requests_increase(window: int) -> str:
    return f"component:rag_component_requests:increase{_w(window)}"


def traffic_increase() -> str:
    """Requests in the traffic window, from replicas that counted the whole of it."""
    return f"component:rag_component_requests:increase{_w(traffic_window())}_whole"


def latency_mean(window: int) -> str:
    return f"component:rag_component_latency_seconds:mean{_w(window)}"


def feedback_ratio(window: int) -> str:
    return f"deployment:rag_feedback_negative:ratio{_w(window)}"


def sli(window: int) -> str:
    return f"slo:sli_error:ratio_rate{_w(window)}"


def traffic_ratio(offset: str) -> str:
    return f"component:rag_component_requests_increase{_w(traffic_window())}:ratio_offset{offset}"


# The exporter's counters (rag_*_total) only grow within a process: a dip of the ETL's running total
# is held at the source, and a new day is told by the row's date (docs/metrics.md, "Counters"). Every
# windowed signal reads them, as Sloth and Pyrra expect, each replica's increase de-duplicated after.
def _counted(metric: str, window: int, *matchers: str) -> str:
    return one(f"increase({selector(metric, *matchers)}[{_w(window)}])")


def _feedback_counted(window: int, sentiments: str) -> str:
    return f"sum without (sentiment) ({_counted('rag_feedback_total', window, sentiments)})"


# An exporter older than the counters serves only today's running totals (the gauges without _total).
# Rules deployed before it fall back to reading those as counters that reset at midnight: the way
# these rules worked before, dips and all. The totals are copied by a recording rule, so that a
# window's numerator and denominator are increases of series sampled at the same instants (a raw
# scrape and a recorded series are not); small counts are read as differences of large ones (errors
# as requests minus successes), since a large total always falls at midnight and a small one may not.
REQUESTS, SUCCESSES = "component:rag_component_requests:today", "component:rag_component_successes:today"
STAGE_TIME = "component:rag_component_stage_time_seconds:today"
FEEDBACK, POSITIVE = "deployment:rag_feedback:today", "deployment:rag_feedback_positive:today"


def _running() -> list[dict[str, Any]]:
    requests = selector("rag_component_requests")
    return [
        {"record": REQUESTS, "expr": requests},
        {"record": SUCCESSES, "expr": f"{requests}\n  - ignoring ()\n{selector('rag_component_errors')}\n"},
        # mean x requests: the day's total stage time so far, so a window's mean is exact.
        {"record": STAGE_TIME, "expr": f"{selector('rag_component_latency_seconds', _MEAN)}\n  * ignoring (statistic)\n"
                                       f"{requests}\n"},
        {"record": FEEDBACK, "expr": f"sum without (sentiment) ({selector('rag_feedback', _SENTIMENTS)})"},
        {"record": POSITIVE, "expr": f"sum without (sentiment) ({selector('rag_feedback', _POSITIVE)})"},
    ]


def _over(series: str, window: int) -> str:
    return one(f"increase({series}[{_w(window)}])")


def _either(counted: str, fallback: str, counter: str) -> str:
    """The counters' signal, or the running totals' for a deployment whose exporter serves no counter (an older
    one). Per deployment, not per series: a label the counters do not have yet (a model promoted out of `other`
    mid-day keeps its counts in `other` until midnight) must not bring back the running totals' dips."""
    deployment = ", ".join(("job", *CONFIG.deployment_labels))
    served = f"group by ({deployment}) ({selector(counter)})"
    return f"(\n  {counted}\n)\nor\n(\n  {fallback}\n  unless on ({deployment})\n  {served}\n)\n"


def _whole_window(window: int) -> str:
    """Requests of each replica that counted the whole window and is still scraped, de-duplicated.

    A replaced pod's counter starts at 0 and the old pod's stops: either covers part of the window,
    which would read as a traffic drop. A replica counts once its series was there a window ago (the
    offset, a duration, which the demo's compressed time scales) and while it is scraped now."""
    total = selector("rag_component_requests_total")
    # resets: a process restarted under the same instance, whose first read was its baseline, lost the
    # writes of its restart; its window is not whole either.
    counted = one(f"\n    increase({total}[{_w(window)}])\n    and ({total} offset {_w(window)})\n"
                  f"    and {total}\n    unless resets({total}[{_w(window)}]) > 0\n  ")
    return _either(counted, _over(selector("rag_component_requests"), window), "rag_component_requests_total")


def live_recording() -> list[dict[str, Any]]:
    """Windowed signals from the exporter's counters (from today's running totals, for an exporter older than
    them); each window spans at least two ETL writes."""
    rules = _running()
    requests, errors = "rag_component_requests_total", "rag_component_errors_total"
    for window in _slo_windows():
        rules.append({"record": sli(window),
                      "expr": _either(f"{_counted(errors, window)}\n  /\n  {_counted(requests, window)}",
                                      f"1 - (\n  {_over(SUCCESSES, window)}\n  /\n  {_over(REQUESTS, window)}\n)",
                                      requests),
                      "labels": {"slo": SLO, "slo_window": _w(window)}})
    for window in _volume_windows():
        rules.append({"record": requests_increase(window),
                      "expr": _either(_counted(requests, window), _over(selector("rag_component_requests"), window),
                                      requests)})
    for window in sorted({w for pair in _latency_windows().values() for w in pair}):
        rules.append({"record": latency_mean(window),
                      "expr": _either(f"{_counted('rag_component_stage_seconds_total', window)}\n  /\n  "
                                      f"{_counted(requests, window)}",
                                      f"{_over(STAGE_TIME, window)}\n  /\n  {_over(REQUESTS, window)}", requests)})
    for window in sorted(set(feedback_windows())):
        rules.append({"record": feedback_ratio(window),
                      "expr": _either(f"{_feedback_counted(window, _NEGATIVE)}\n  /\n  "
                                      f"{_feedback_counted(window, _SENTIMENTS)}",
                                      f"1 - (\n  {_over(POSITIVE, window)}\n  /\n  {_over(FEEDBACK, window)}\n)",
                                      "rag_feedback_total")})
    long = feedback_windows()[0]
    rules.append({"record": f"deployment:rag_feedback:increase{_w(long)}",
                  "expr": _either(_feedback_counted(long, _SENTIMENTS), _over(FEEDBACK, long), "rag_feedback_total")})
    # Traffic against the same window a week (and a day) earlier. Recorded series exist only where
    # this rule ran on live scrapes, never over backfilled days (flat within the day), so the
    # comparison is absent, and quiet, until a week of live scrapes is there.
    rules.append({"record": traffic_increase(), "expr": _whole_window(traffic_window())})
    for offset in ("1w", "1d"):
        rules.append({"record": traffic_ratio(offset),
                      "expr": f"{traffic_increase()}\n/\n{traffic_increase()} offset {offset}\n"})
    rules += [
        # Tokens per model in the last hour, prompt and completion.
        {"record": "model:rag_model_tokens:increase1h",
         "expr": _either(f"sum without (token_type) ({_counted('rag_model_tokens_total', 60)})",
                         f"sum without (token_type) ({_over(selector('rag_model_tokens'), 60)})",
                         "rag_model_tokens_total")},
        # ... scaled to tokens per day, to compare with the baseline daily tokens.
        {"record": "model:rag_model_tokens:burn_rate1h_per_day", "expr": "model:rag_model_tokens:increase1h * 24"},
    ]
    return rules


def slo_recording() -> list[dict[str, Any]]:
    """The SLO's metadata and the budget left over the period, exact from the exporter's period counts."""
    short = CONFIG.min_window_minutes
    period = (f"{one(selector('rag_component_period_errors'))}\n/\n"
              f"{one(selector('rag_component_period_requests'))}\n")
    labels = {"slo": SLO}
    return [
        {"record": "slo:objective:ratio", "expr": f"vector({number(CONFIG.availability_objective)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({number(CONFIG.error_budget)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({CONFIG.slo_period_days})", "labels": labels},
        # Burn rate now (the shortest window) and over the whole period: 1 spends the budget exactly.
        {"record": "slo:current_burn_rate:ratio",
         "expr": f"max without (slo_window) ({sli(short)}{{{_SLO}}}) / {number(CONFIG.error_budget)}"},
        {"record": "slo:period_burn_rate:ratio", "expr": f"(\n{period}) / {number(CONFIG.error_budget)}\n",
         "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio", "expr": f"1 - slo:period_burn_rate:ratio{{{_SLO}}}",
         "labels": labels},
    ]


def _pair_text(severity: str) -> str:
    return " or ".join(f"{_w(long)} and {_w(short)} at {factor:g}x" for long, short, factor in _pairs(severity))


def _budget_alert(severity: str) -> dict[str, Any]:
    budget = CONFIG.error_budget
    pairs = []
    for long, short, factor in _pairs(severity):
        bound = number(factor * budget)
        pairs.append(f"(\n  max without (slo_window) ({sli(long)}{{{_SLO}}} > {bound})\n"
                     f"  and\n  max without (slo_window) ({sli(short)}{{{_SLO}}} > {bound})\n"
                     f"  and ignoring (slo)\n  {requests_increase(long)} >= {CONFIG.slo_min_requests_at(factor)}\n)")
    page = severity == "critical"
    return alert(
        "RagComponentErrorBudgetBurn", "\nor\n".join(pairs) + "\n", CONFIG.for_page if page else CONFIG.for_ticket,
        severity,
        f"A pipeline component is burning its error budget {'fast' if page else 'steadily'}.",
        f"Component {{{{ $labels.component }}}} failed {{{{ $value | humanizePercentage }}}} of its requests over "
        f"the alert's long window ({_pair_text(severity)} the budget of {percent(budget)}, with at least "
        f"{' and '.join(map(str, sorted({CONFIG.slo_min_requests_at(f) for _, _, f in _pairs(severity)})))} "
        f"requests in the long window): at this rate the {CONFIG.slo_period_days}-day budget "
        f"({percent(CONFIG.availability_objective)} of requests succeed) is spent in "
        f"{CONFIG.slo_period_days / min(f for _, _, f in _pairs(severity)):g} days or less.",
        "rag-latency", ("component",), slo=SLO)


def _latency_alert(severity: str) -> dict[str, Any]:
    long, short = _latency_windows()[severity]
    factor = CONFIG.latency_page_factor if severity == "critical" else CONFIG.latency_ticket_factor
    # the usual day of the week, in every anomaly.baseline mode (outside plain, _mean is yesterday's weekday's)
    baseline = baseline_level("rag_component_latency_baseline_level_seconds",
                              "rag_component_latency_baseline_mean_seconds")
    expr = (f"(\n  {latency_mean(long)}\n    > {number(factor)} * {baseline}\n)\nand\n"
            f"(\n  {latency_mean(short)}\n    > {number(factor)} * {baseline}\n)\nand\n"
            f"{requests_increase(long)} >= {CONFIG.latency_min_requests}\n")
    return alert(
        "RagComponentLatencyHigh", expr, CONFIG.for_page if severity == "critical" else CONFIG.for_ticket, severity,
        "A pipeline component is much slower than its baseline, now." if severity == "critical"
        else "A pipeline component has been slower than its baseline for hours.",
        f"Mean latency of component {{{{ $labels.component }}}} over the last {_w(long)} was "
        f"{{{{ $value | humanizeDuration }}}}, more than {factor:g} times its 30-day baseline level (and so was the "
        f"last {_w(short)}, with at least {CONFIG.latency_min_requests} requests).",
        "rag-latency", ("component",))


def slo_alerts() -> list[dict[str, Any]]:
    """Availability: multiwindow, multi-burn-rate pages and tickets, each gated on volume. Latency: the
    windowed mean against a multiple of the component's 30-day baseline, over a long and a short window."""
    return [_budget_alert("critical"), _budget_alert("warning"),
            _latency_alert("critical"), _latency_alert("warning")]


def _written_today() -> str:
    """The ETL wrote today's rows of latency_metrics within two cadences (the table's newest write, for an exporter
    older than rag_table_today_updated_timestamp_seconds: yesterday's late writes after midnight then count)."""
    bound = 2 * CONFIG.etl_cadence_minutes * 60
    today = one(selector("rag_table_today_updated_timestamp_seconds", _LATENCY_TABLE))
    newest = one(selector("rag_table_updated_timestamp_seconds", _LATENCY_TABLE))
    return _either(f"time() - {today} < {bound}", f"time() - {newest} < {bound}",
                   "rag_table_today_updated_timestamp_seconds")


def live_alerts() -> list[dict[str, Any]]:
    """Feedback and traffic over windows, not over the day so far, so an incident at 20:00 is not
    diluted by the hours before it. Traffic is compared with the same window of the week before,
    so a quiet night or an ordinary weekend is not a drop."""
    long, short = feedback_windows()
    ratio = CONFIG.feedback_negative_ratio
    total = f'component="{CONFIG.traffic_component}"'
    window = _w(traffic_window())
    return [
        alert("RagNegativeFeedbackHigh",
              f"{feedback_ratio(long)} > {number(ratio)}\nand\n{feedback_ratio(short)} > {number(ratio)}\nand\n"
              f"deployment:rag_feedback:increase{_w(long)} >= {CONFIG.feedback_min_events}\n",
              CONFIG.for_page, "critical", "Users are rating many answers negatively, now.",
              f"{{{{ $value | humanizePercentage }}}} of the user feedback in the last {_w(long)} was negative "
              f"(threshold {percent(ratio)} over {_w(long)} and {_w(short)}, with at least "
              f"{CONFIG.feedback_min_events} feedback events).", "rag-feedback"),
        alert("RagTrafficDrop",
              f"{traffic_ratio('1w')}{{{total}}} < {number(CONFIG.traffic_drop_ratio)}\nand\n"
              f"{traffic_increase()}{{{total}}} offset 1w >= {CONFIG.traffic_min_requests}\n"
              # Requests that stop growing while the ETL writes today's rows are a drop; while it is late
              # (a late first write after midnight included), a pause.
              f"and on ({', '.join(('job', *CONFIG.deployment_labels))})\n"
              f"(\n{_written_today()})\n",
              CONFIG.for_traffic, "critical", "The RAG service is receiving far fewer requests than a week ago.",
              f"The service answered {{{{ $value | humanizePercentage }}}} of the requests of the same {window} a week "
              f"ago (threshold {percent(CONFIG.traffic_drop_ratio)}, when that window had at least "
              f"{CONFIG.traffic_min_requests} requests, and the ETL wrote today's rows of latency_metrics in the last "
              f"{duration(2 * CONFIG.etl_cadence_minutes)}).", "rag-overview"),
    ]

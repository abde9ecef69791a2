"""The daily z-score alerts replayed on the tables' history, in every baseline mode, and which mode fits it.

Each past day is scored as the exporter scored it then: the rows a refresh on the next day would have read
become series by the builders' own definition (series.py: validation, top-N labels, each day's value), the
finished-day rule is builders.day_finished, and series.score_all scores them with anomaly.baseline set to
each mode in turn, so nothing can differ from the live rag_*_zscore series. Each day's rows are validated
once and each window's series built once for the three modes.

The alerts are those of alerting/rules/anomalies.yml: high and low side, a warning beyond +-warning and a
critical beyond +-critical (mixin/config.py's zscore_warning and zscore_critical). Pure but for history(), which
reads the rows: rows in, plain values out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import partial
from typing import Any, TypeVar

import psycopg2

from .anomaly import BASELINES
from .builders import day_finished
from .config import Config
from .db import TableRead, columns_of, stream_days, unreadable_tables
from .parallel import in_order
from .series import SCORED, Row, daily_series, labels, score_all
from .tables import LATENCY_METRICS, TOKEN_USAGE_DAILY
from .validate import validate_rows

T = TypeVar("T")

# Table -> (the alert names' prefix, the label that names a series), as in mixin/rules.py's anomalies().
SUBJECTS = {LATENCY_METRICS.name: ("RagComponentLatency", "component"),
            TOKEN_USAGE_DAILY.name: ("RagModelTokenUsage", "model")}
# The month of "alerts per month": a year over twelve.
MONTH_DAYS = 365.25 / 12
# Under this many scored days (every weekday ten times or fewer), the modes' counts differ by too few
# alerts to rank them with confidence: the recommendation says so.
FEW_DAYS = 70


@dataclass(frozen=True)
class Firing:
    """One alert rule that would have fired for one series on one day."""

    alert: str  # e.g. RagComponentLatencyAnomaly, RagModelTokenUsageLowAnomaly
    severity: str  # warning | critical
    series: str  # component=llm, model=gpt-4o
    day: date
    zscore: float


@dataclass(frozen=True)
class ModeResult:
    """One baseline mode over the history: its firings and the summary a person compares modes by."""

    mode: str
    firings: tuple[Firing, ...]
    alerts: int  # notifications: one per alert, series and day (a critical inhibits its warning twin)
    alerts_per_month: float
    days_flagged: Mapping[str, int]  # series -> days on which any of its alerts fired
    longest_run: tuple[int, str, date | None]  # consecutive alert days, the series, its first day
    scored: int  # (series, day) scores the mode produced


@dataclass(frozen=True)
class Backtest:
    """Every mode's result over the same scored days, and the advice drawn from them."""

    first: date | None
    last: date | None
    days: int
    series: tuple[str, ...]
    warning: float
    critical: float
    modes: Mapping[str, ModeResult]
    recommendation: str
    reasons: tuple[str, ...] = field(default_factory=tuple)


def windows(stream: Iterable[tuple[date, list[T]]], days_read: int, first_today: date | None = None
            ) -> Iterator[tuple[date, date, list[tuple[date, list[T]]]]]:
    """(today, the newest day read, the days read) for every day from the stream's second day (or first_today)
    to its last: the days_read days before today and today, as db.Database.read reads a daily table."""
    window: deque[tuple[date, list[T]]] = deque()
    stream = iter(stream)
    ahead = next(stream, None)
    if ahead is None:
        return
    today = max(ahead[0] + timedelta(days=1), first_today or ahead[0])
    while True:
        while ahead is not None and ahead[0] <= today:
            window.append(ahead)
            ahead = next(stream, None)
        while window and window[0][0] < today - timedelta(days=days_read):
            window.popleft()
        if window:
            yield today, window[-1][0], list(window)
        if ahead is None:  # no later rows: the days from here on are never finished
            return
        today += timedelta(days=1)


def _validated(stream: Iterable[tuple[date, list[tuple[Any, ...]]]], table: str
               ) -> Iterator[tuple[date, list[Row]]]:
    """Each day's valid rows, validated once: a row of a day is valid on every later day too (only a date
    after today is ever rejected for the day), so every window that holds the day can share them."""
    columns = columns_of(table)
    for day, rows in stream:
        yield day, validate_rows(columns, rows, day)[0]


Window = tuple[str, date, dict[str, dict[date, float]]]  # the series' label name, the scored day, its series


def scored_windows(streams: Mapping[str, Iterable[tuple[date, list[tuple[Any, ...]]]]], config: Config,
                   first_scored: date | None = None, last_scored: date | None = None) -> Iterator[Window]:
    """Each scored day of each table in streams that has a z-score alert, with the series it is scored on.

    A day is scored by the refresh of the day after it, once the table holds rows of a later day
    (builders.day_finished), on the series that refresh builds (series.daily_series of the rows it reads,
    labelled by their top-N); days outside first_scored..last_scored are read as baseline only."""
    first_today = first_scored + timedelta(days=1) if first_scored else None
    for table, stream in streams.items():
        name, scored = SUBJECTS[table][1], SCORED[table]
        for today, newest, days in windows(_validated(stream, table), config.days_read, first_today):
            scored_day = today - timedelta(days=1)
            if last_scored is not None and scored_day > last_scored:
                break
            if not day_finished(TableRead(table, (), (), newest_date=newest, updated_at=None), scored_day):
                continue
            rows = [row for _, day_rows in days for row in day_rows]
            yield name, scored_day, daily_series(rows, labels(rows, scored.key, scored.volume, scored.limit(config)),
                                                 scored)


def score_window(config: Config, window: Window) -> tuple[str, date, dict[str, dict[str, float]]]:
    """One window's z-scores: mode -> series key -> z, in every baseline mode."""
    name, day, series = window
    return name, day, {mode: {key: score.zscore for key, score
                              in score_all(series, day, replace(config, baseline=mode)).items()
                              if score.zscore is not None} for mode in BASELINES}


def replay(streams: Mapping[str, Iterable[tuple[date, list[tuple[Any, ...]]]]], config: Config,
           first_scored: date | None = None, last_scored: date | None = None, jobs: int = 1
           ) -> dict[str, dict[str, dict[date, float]]]:
    """mode -> series -> scored day -> z-score over scored_windows, scored in `jobs` processes."""
    scores: dict[str, dict[str, dict[date, float]]] = {mode: {} for mode in BASELINES}
    for name, day, by_mode in in_order(partial(score_window, config),
                                       scored_windows(streams, config, first_scored, last_scored), jobs):
        for mode, zscores in by_mode.items():
            for key, z in zscores.items():
                scores[mode].setdefault(f"{name}={key}", {})[day] = z
    return scores


def _alert(series: str) -> str:
    label = series.partition("=")[0]
    return next(prefix for prefix, name in SUBJECTS.values() if name == label)


def firings(series_scores: Mapping[str, Mapping[date, float]], warning: float, critical: float) -> list[Firing]:
    """Every rule of anomalies.yml that fires on these scores: z > warning, z > critical, and the low side's
    z < -warning, z < -critical (strict, as the rules compare)."""
    found = []
    for series, days in sorted(series_scores.items()):
        for day, z in sorted(days.items()):
            low = z < 0
            name = _alert(series) + ("LowAnomaly" if low else "Anomaly")
            for severity, limit in (("warning", warning), ("critical", critical)):
                if abs(z) > limit:
                    found.append(Firing(name, severity, series, day, z))
    return found


def longest_run(days: Iterable[date]) -> tuple[int, date | None]:
    """The longest stretch of consecutive days, and its first day."""
    best, start, run, run_start, previous = 0, None, 0, None, None
    for day in sorted(set(days)):
        run, run_start = (run + 1, run_start) if previous and day - previous == timedelta(days=1) else (1, day)
        if run > best:
            best, start = run, run_start
        previous = day
    return best, start


def summarize(mode: str, series_scores: Mapping[str, Mapping[date, float]], days: int, warning: float,
              critical: float) -> ModeResult:
    """One mode's firings and summary over `days` scored days."""
    fired = firings(series_scores, warning, critical)
    notified = {(f.alert, f.series, f.day) for f in fired}  # the critical twin inhibits the warning
    flagged: dict[str, set[date]] = {}
    for f in fired:
        flagged.setdefault(f.series, set()).add(f.day)
    run: tuple[int, str, date | None] = (0, "", None)
    for series, flagged_days in sorted(flagged.items()):
        length, start = longest_run(flagged_days)
        if length > run[0]:
            run = (length, series, start)
    return ModeResult(mode=mode, firings=tuple(fired), alerts=len(notified),
                      alerts_per_month=round(len(notified) / days * MONTH_DAYS, 2) if days else 0.0,
                      days_flagged={s: len(d) for s, d in sorted(flagged.items())}, longest_run=run,
                      scored=sum(len(d) for d in series_scores.values()))


def _flagged(result: ModeResult) -> set[tuple[str, str, date]]:
    return {(f.alert, f.series, f.day) for f in result.firings}


def recommend(results: Mapping[str, ModeResult], days: int) -> tuple[str, tuple[str, ...]]:
    """The mode to choose and why: the days at least two modes flag are taken as the history's real anomalies;
    the mode that misses fewest of them wins, then the one with fewest alerts a month, then the simplest
    (the order of anomaly.BASELINES). A recommendation only: nothing is switched."""
    votes: dict[tuple[str, str, date], int] = {}
    for result in results.values():
        for key in _flagged(result):
            votes[key] = votes.get(key, 0) + 1
    agreed = {key for key, count in votes.items() if count >= 2}
    missed = {mode: len(agreed - _flagged(result)) for mode, result in results.items()}
    order = list(BASELINES)
    best = min(results, key=lambda m: (missed[m], results[m].alerts_per_month, results[m].longest_run[0],
                                       order.index(m)))
    chosen = results[best]
    reasons = [f"{len(agreed)} alert days are flagged by at least two modes; {best} misses "
               f"{missed[best]} of them"
               + (", " + ", ".join(f"{m} {missed[m]}" for m in order if m != best) if agreed else "") + "."]
    others = [m for m in order if m != best]
    reasons.append(f"{best} raises {chosen.alerts_per_month:g} alerts a month ("
                   + ", ".join(f"{m} {results[m].alerts_per_month:g}" for m in others) + ").")
    if chosen.longest_run[0] > 1:
        reasons.append(f"Its longest run of consecutive alert days is {chosen.longest_run[0]} ({chosen.longest_run[1]} "
                       f"from {chosen.longest_run[2]}): a level that moved for good alerts until the "
                       "baseline's lookback has caught up.")
    for mode in others:
        only = len(_flagged(results[mode]) - agreed)
        if only:
            reasons.append(f"{mode} alone flags {only} alert day{'s' if only > 1 else ''} no other mode does.")
    if days < FEW_DAYS:
        reasons.append(f"Only {days} days were scored (fewer than {FEW_DAYS}): the modes differ by a few alerts, "
                       "so weigh this lightly and run the backtest again when more history has accrued.")
    reasons.append("Nothing was changed: set anomaly.baseline in the config file to follow this.")
    return best, tuple(reasons)


def backtest(streams: Mapping[str, Iterable[tuple[date, list[tuple[Any, ...]]]]], config: Config,
             warning: float, critical: float, first_scored: date | None = None,
             last_scored: date | None = None, jobs: int = 1) -> Backtest:
    """Replay every mode over the streams' history (in `jobs` processes) and summarize it."""
    scores = replay(streams, config, first_scored, last_scored, jobs)
    days_scored = sorted({d for by_series in scores.values() for days in by_series.values() for d in days})
    first, last = (days_scored[0], days_scored[-1]) if days_scored else (None, None)
    span = (last - first).days + 1 if first and last else 0
    results = {mode: summarize(mode, scores[mode], span, warning, critical) for mode in BASELINES}
    best, reasons = recommend(results, span) if span else ("plain", ("No day could be scored: the tables hold "
                                                                     "too little history.",))
    series = tuple(sorted({s for by_series in scores.values() for s in by_series}))
    return Backtest(first, last, span, series, warning, critical, results, best, reasons)


def history(dsn: str, password: str | None, config: Config, warning: float, critical: float, today: date,
            days: int | None, jobs: int = 1) -> tuple[Backtest, dict[str, str]]:
    """The backtest of the last `days` days before today (None: all the tables hold), read in one read-only
    transaction; and the scored tables that could not be read, each with why (their alerts are left out)."""
    first = today - timedelta(days=days) if days else None
    # The first scored day is scored by the refresh of the day after it, which reads days_read days back.
    since = first + timedelta(days=1) - timedelta(days=config.days_read) if first else date.min
    conn = psycopg2.connect(dsn, password=password, application_name=config.application_name + " backtest")
    try:
        conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
        skipped = unreadable_tables(conn, tuple(SUBJECTS))
        streams = {table: stream_days(conn, table, since, today) for table in SUBJECTS if table not in skipped}
        return backtest(streams, config, warning, critical, first, today - timedelta(days=1), jobs), skipped
    finally:
        conn.close()


def as_json(result: Backtest) -> dict[str, Any]:
    """The backtest as plain JSON values (days as YYYY-MM-DD)."""
    def day(value: date | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "from": day(result.first), "to": day(result.last), "days": result.days, "series": list(result.series),
        "thresholds": {"warning": result.warning, "critical": result.critical},
        "modes": {mode: {
            "alerts": r.alerts, "alerts_per_month": r.alerts_per_month, "scored": r.scored,
            "days_flagged": dict(r.days_flagged),
            "longest_run": {"days": r.longest_run[0], "series": r.longest_run[1] or None,
                            "from": day(r.longest_run[2])},
            "firings": [{"alert": f.alert, "severity": f.severity, "series": f.series, "day": day(f.day),
                         "zscore": round(f.zscore, 2)} for f in r.firings],
        } for mode, r in result.modes.items()},
        "recommendation": {"baseline": result.recommendation, "reasons": list(result.reasons)},
    }


def as_text(result: Backtest) -> str:
    """The backtest for a person: each alert's days per mode, a summary table, the recommendation."""
    lines = [f"Backtest of the daily z-score alerts, {result.first} to {result.last} ({result.days} days, "
             f"{len(result.series)} series); warning beyond ±{result.warning:g}, critical beyond ±{result.critical:g}."]
    names = sorted({f.alert for r in result.modes.values() for f in r.firings})
    for name in names:
        lines += ["", name]
        for mode, r in result.modes.items():
            critical = {(f.series, f.day) for f in r.firings if f.alert == name and f.severity == "critical"}
            for severity in ("critical", "warning"):
                # a warning whose critical twin fired is inhibited (alertmanager.yml): listed once, as critical
                hits = [f for f in r.firings if f.alert == name and f.severity == severity
                        and (severity == "critical" or (f.series, f.day) not in critical)]
                if hits:
                    text = ", ".join(f"{f.day} {f.series} ({f.zscore:+.1f})" for f in hits)
                    lines.append(f"  {mode:<8} {severity:<8} {len(hits):>3}: {text}")
    if not names:
        lines += ["", "No alert would have fired in any mode."]
    lines += ["", f"{'mode':<8} {'alerts':>6} {'a month':>7} {'longest run':>11}  days flagged per series"]
    for mode, r in result.modes.items():
        flagged = ", ".join(f"{s} {n}" for s, n in r.days_flagged.items()) or "none"
        lines.append(f"{mode:<8} {r.alerts:>6} {r.alerts_per_month:>7g} {r.longest_run[0]:>7} days  {flagged}")
        if r.longest_run[0] > 1:
            lines.append(f"{'':<8} longest run: {r.longest_run[1]} from {r.longest_run[2]}")
    lines += ["", f"Recommendation: anomaly.baseline: {result.recommendation}", *(f"  - {r}" for r in result.reasons)]
    return "\n".join(lines) + "\n"

"""Anomaly z-scores: a day's value against the days before it, plain, with the weekly rhythm taken out, or robust."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, timedelta

import numpy as np

from .score import MIN_DAYS_PER_WEEKDAY, Score


def zscore(value: float, baseline: np.ndarray | list[float], *, min_days: int,
           min_relative_spread: float) -> Score | None:
    """Score value against baseline; None when the baseline has fewer than min_days values.

    The spread is the sample standard deviation (ddof=1, as the old design), floored at
    min_relative_spread * |mean| so that a nearly flat baseline does not turn a tiny
    wobble into a huge score. When even the floor is zero (a baseline of identical
    zeros), the z-score is 0 if the value equals the mean and undefined (None) otherwise:
    never a division by zero, never NaN.
    """
    days = np.asarray(baseline, dtype=float)
    days = days[np.isfinite(days)]
    if days.size < max(min_days, 2):
        return None
    mean = float(days.mean())
    stddev = float(days.std(ddof=1))
    spread = max(stddev, min_relative_spread * abs(mean))
    if spread > 0:
        z: float | None = (value - mean) / spread
    else:
        z = 0.0 if value == mean else None
    return Score(value=value, mean=mean, stddev=stddev, zscore=z, baseline_days=int(days.size),
                 center=mean, spread=spread, level=mean)


BASELINES = ("plain", "weekday", "robust")

def weekday_factors(baseline: Mapping[date, float]) -> dict[int, float] | None:
    """Each weekday's level relative to the week (Monday is 0): median of its days over the mean of
    the seven medians. None when some weekday has too few days, or a level is zero.

    The median, not the mean: a holiday or an anomalous day in the lookback is one of four or
    five values of its weekday, and must not drag the whole weekday's factor with it.
    """
    by_weekday: dict[int, list[float]] = {w: [] for w in range(7)}
    for day, value in baseline.items():
        if np.isfinite(value):
            by_weekday[day.weekday()].append(value)
    if any(len(values) < MIN_DAYS_PER_WEEKDAY for values in by_weekday.values()):
        return None
    levels = {w: float(np.median(values)) for w, values in by_weekday.items()}
    week = sum(levels.values()) / 7
    if week <= 0 or min(levels.values()) <= 0:
        return None
    return {w: level / week for w, level in levels.items()}


def score_day(series: Mapping[date, float], day: date, *, lookback_days: int, min_days: int,
              min_relative_spread: float, baseline: str = "plain") -> Score | None:
    """Score series[day] against the values of the lookback_days days before it.

    Missing days are left out of the baseline, not counted as zero: a day without
    traffic has no latency, and a day the ETL missed is not a day of zero tokens.

    baseline="weekday" takes the weekly rhythm out first: every day, the scored one included,
    is divided by its weekday's factor (weekday_factors), and the z-score is that of the
    adjusted value against the adjusted baseline. The mean and spread returned are scaled back
    by the scored day's factor, so they read as "what this weekday usually is", in the series'
    units; level stays the adjusted mean (the factors average 1 over the week: a usual day of
    the week). Without enough days of every weekday it is the plain score.
    """
    if day not in series:
        return None
    first = day - timedelta(days=lookback_days)
    window = {d: v for d, v in series.items() if first <= d < day}
    if baseline == "robust":
        # Here, not at the top: robust imports scipy.stats (1.6 s), which the CLI and the other modes never wait for.
        from .robust import robust_score
        return robust_score(series[day], day, window, min_days=min_days, min_relative_spread=min_relative_spread)
    factors = weekday_factors(window) if baseline == "weekday" else None
    if factors is None:
        return zscore(series[day], list(window.values()), min_days=min_days, min_relative_spread=min_relative_spread)
    factor = factors[day.weekday()]
    adjusted = [v / factors[d.weekday()] for d, v in window.items()]
    score = zscore(series[day] / factor, adjusted, min_days=min_days, min_relative_spread=min_relative_spread)
    if score is None:
        return None
    return replace(score, value=series[day], mean=score.mean * factor, stddev=score.stddev * factor,
                   center=score.center * factor, spread=score.spread * factor)

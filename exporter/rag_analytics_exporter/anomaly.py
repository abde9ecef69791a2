"""Anomaly z-scores: a day's value against the days before it (mean and sample standard deviation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np


@dataclass(frozen=True)
class Score:
    """One scored value, with the baseline it was scored against."""

    value: float
    mean: float
    stddev: float
    zscore: float | None
    baseline_days: int


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
    return Score(value=value, mean=mean, stddev=stddev, zscore=z, baseline_days=int(days.size))


def score_day(series: Mapping[date, float], day: date, *, lookback_days: int, min_days: int,
              min_relative_spread: float) -> Score | None:
    """Score series[day] against the values of the lookback_days days before it.

    Missing days are left out of the baseline, not counted as zero: a day without
    traffic has no latency, and a day the ETL missed is not a day of zero tokens.
    """
    if day not in series:
        return None
    first = day - timedelta(days=lookback_days)
    baseline = [v for d, v in series.items() if first <= d < day]
    return zscore(series[day], baseline, min_days=min_days, min_relative_spread=min_relative_spread)

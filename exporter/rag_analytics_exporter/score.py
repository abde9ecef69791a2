"""What every baseline mode returns, and what the weekly modes need: shared by anomaly (plain, weekday) and robust."""

from __future__ import annotations

from dataclasses import dataclass

# A weekday's level is the median of its days in the lookback; with fewer than this many days of
# some weekday the rhythm cannot be estimated, and the plain baseline is used instead.
MIN_DAYS_PER_WEEKDAY = 2


@dataclass(frozen=True)
class Score:
    """One scored value, with the baseline it was scored against.

    mean and stddev are the baseline's moments (scaled to the scored weekday outside plain);
    center and spread are what the z-score is made of, zscore = (value - center) / spread,
    the spread floor included; outliers counts the baseline days left out of them. level is the usual
    day of the week, not scaled to the scored weekday (plain: the mean), for rules against "a usual day".
    """

    value: float
    mean: float
    stddev: float
    zscore: float | None
    baseline_days: int
    center: float
    spread: float
    level: float
    outliers: int = 0

"""Anomaly z-scores: a day's value against the days before it, plain, with the weekly rhythm taken out, or robust."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import NamedTuple

import numpy as np

# scipy.stats takes 1.6 s to import: only robust's functions do, so the CLI and plain mode never wait.


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

# A weekday's level is the median of its days in the lookback; with fewer than this many days of
# some weekday the rhythm cannot be estimated, and the plain baseline is used instead.
MIN_DAYS_PER_WEEKDAY = 2


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


# Robust leaves out a day beyond this many robust sigmas (not Iglewicz and Hoaglin's 3.5: by a sigma 20 % off, it cut
# 4-5x the usual days a true 3.5 would, and the t band assumes they are kept; docs/metrics.md), and fits a trend from
# this many days on (three weeks, as Datadog's weekly seasonality needs): a slope from two weeks is mostly noise.
OUTLIER_Z = 4.0
MIN_DAYS_FOR_TREND = 21
MIN_DAYS_FOR_OUTLIERS = 14
# The robust spread is widened so that a usual day crosses the warning threshold (mixin/config.py)
# about this often, both sides together: a 3-sigma normal band would, once a series-year.
WARNING_Z = 3.0
FALSE_WARNINGS_PER_YEAR = 0.5


def season_groupings(days: list[date]) -> list[dict[int, int]]:
    """The weekly rhythms that days can estimate, as weekday -> group: each weekday its own group
    when every weekday has MIN_DAYS_PER_WEEKDAY days, and weekdays against weekend days when both
    kinds have that many (from a week of history on). Empty: no rhythm can be estimated."""
    counts = np.bincount([d.weekday() for d in days], minlength=7)
    groupings = []
    if counts.min() >= MIN_DAYS_PER_WEEKDAY:
        groupings.append({w: w for w in range(7)})
    if counts[:5].sum() >= MIN_DAYS_PER_WEEKDAY and counts[5:].sum() >= MIN_DAYS_PER_WEEKDAY:
        groupings.append({w: int(w >= 5) for w in range(7)})
    return groupings


def _factors(levels: Mapping[int, float], groups: Mapping[int, int]) -> dict[int, float] | None:
    """Group -> level over the week's level (the mean over the seven weekdays); None at a level of 0."""
    week = sum(levels[groups[w]] for w in range(7)) / 7
    if week <= 0 or min(levels.values()) <= 0:
        return None
    return {g: level / week for g, level in levels.items()}


def _screen(values: np.ndarray, weekend: np.ndarray, min_relative_spread: float) -> np.ndarray:
    """Days that look usual against their own kind (weekday or weekend day): within OUTLIER_Z robust
    sigmas of the kind's median. A weekday's level comes from four or five days, so two anomalies
    on Saturdays would move it; against all nine weekend days they stand out."""
    from scipy import stats
    relative = np.empty_like(values)
    for kind in (False, True):
        mask = weekend == kind
        if mask.any():
            median = float(np.median(values[mask]))
            if not median > 0:  # no level to be relative to; nor a rhythm to take out (_factors)
                return np.ones(values.size, dtype=bool)
            relative[mask] = values[mask] / median
    center = float(np.median(relative))
    cut = OUTLIER_Z * max(float(stats.median_abs_deviation(relative, scale="normal")),
                          min_relative_spread * abs(center))
    return np.abs(relative - center) <= cut if cut > 0 and np.isfinite(cut) else np.ones(values.size, dtype=bool)


def _level(values: np.ndarray, idx: list[int], usual: np.ndarray) -> tuple[float, dict[int, float]]:
    """A group's level and, per member, the level without it: the mean of its usual days (a trimmed
    mean: more precise than a median of four), or the median of all when under two are usual."""
    kept = [i for i in idx if usual[i]]
    if len(kept) >= MIN_DAYS_PER_WEEKDAY:
        total = float(values[kept].sum())
        without = {i: (total - values[i]) / (len(kept) - 1) if usual[i] else total / len(kept) for i in idx}
        return total / len(kept), without
    without = {i: statistics.median(values[[j for j in idx if j != i]].tolist()) for i in idx}
    return statistics.median(values[idx].tolist()), without


# Per weekday replaces weekdays against weekend days only when an F test rejects the simpler rhythm
# at this level: 1 window in 100 with no per-weekday rhythm picks it by chance.
RHYTHM_TEST_LEVEL = 0.01


class _Rhythm(NamedTuple):
    rss: float  # sum of the squared relative residuals of every day against its group's level
    parameters: int  # levels
    factor_day: float
    factors: np.ndarray
    factors_loo: np.ndarray
    groups: dict[int, int]  # weekday -> group


def _simplest_sufficient(candidates: list[_Rhythm], n: int) -> _Rhythm | None:
    """Of nested candidates, the one with fewer levels unless the nested-model F test
    (scipy.stats.f) says the extra levels explain significantly more of the n days."""
    from scipy import stats
    if len(candidates) < 2:
        return candidates[0] if candidates else None
    simple, rich = sorted(candidates, key=lambda c: c.parameters)
    df = n - rich.parameters
    if df < 1 or simple.rss <= rich.rss:
        return simple
    if rich.rss == 0:
        return rich
    extra = rich.parameters - simple.parameters
    statistic = (simple.rss - rich.rss) / extra / (rich.rss / df)
    return rich if stats.f.sf(statistic, extra, df) < RHYTHM_TEST_LEVEL else simple


def seasonal_factors(days: list[date], values: np.ndarray, day: date,
                     usual: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, int]:
    """The scored day's factor, every baseline day's factor, every baseline day's factor
    computed without that day (leave one out), every baseline day's group and the scored day's;
    factors all 1 and a single group where no rhythm can be estimated.

    Of the rhythms season_groupings allows, per weekday is used only where the weekdays really
    differ (_simplest_sufficient): its five more levels cost precision, and picking it because it
    happens to fit the window better leaves a sigma that is too small for the scored day.
    """
    ones, one_group = np.ones(values.size), np.zeros(values.size, dtype=int)
    groupings = season_groupings(days)
    if not groupings:
        return 1.0, ones, ones, one_group, 0
    candidates: list[_Rhythm] = []
    for groups in groupings:
        members: dict[int, list[int]] = {}
        for i, d in enumerate(days):
            members.setdefault(groups[d.weekday()], []).append(i)
        fitted = {g: _level(values, idx, usual) for g, idx in members.items()}
        levels = {g: level for g, (level, _) in fitted.items()}
        full = _factors(levels, groups)
        if full is None:
            continue
        loo = np.empty(values.size)
        for g, (_, without) in fitted.items():
            for i, level in without.items():
                factors = _factors(levels | {g: level}, groups)
                loo[i] = factors[g] if factors is not None else np.nan
        if not np.isfinite(loo).all():
            continue
        # every day relative to its group's level; the unusual ones too, or a Monday peak that the
        # screen (by weekday or weekend day only) marks unusual would never count for per weekday
        residuals = values / np.array([levels[groups[d.weekday()]] for d in days]) - 1
        candidates.append(_Rhythm(float(residuals @ residuals), len(levels), full[groups[day.weekday()]],
                                  np.array([full[groups[d.weekday()]] for d in days]), loo, groups))
    best = _simplest_sufficient(candidates, values.size)
    if best is None:
        return 1.0, ones, ones, one_group, 0
    groups = best.groups
    return (best.factor_day, best.factors, best.factors_loo, np.array([groups[d.weekday()] for d in days]),
            groups[day.weekday()])


def least_squares(adjusted: np.ndarray, age: np.ndarray | None, group: np.ndarray,
                  group_day: int) -> tuple[float, float, float, int]:
    """The final fit on the days kept: ordinary least squares of the rhythm-adjusted values on a
    level per group (and a slope against age, when given), as a reweighted least squares after the
    robust screen. Returns the prediction for the scored day (its group, age 0), sigma (residual
    sd with n - p degrees of freedom), the scored day's leverage x0' (X'X)^-1 x0 and n - p.

    With normal days that is the textbook prediction interval: error / (sigma sqrt(1 + leverage))
    is Student-t with n - p degrees of freedom. A scored day's group without kept days (every usual
    Saturday cut), or as many parameters as days, falls back to one level for all days.
    """
    groups = sorted(set(group.tolist())) if group_day in group else []
    columns = [(group == g).astype(float) for g in groups] or [np.ones(adjusted.size)]
    x0 = [float(g == group_day) for g in groups] or [1.0]
    if age is not None:
        columns.append(age)
        x0.append(0.0)  # the scored day is age 0
    design, point = np.column_stack(columns), np.array(x0)
    inverse = np.linalg.pinv(design.T @ design)
    coefficients = np.linalg.lstsq(design, adjusted, rcond=None)[0]
    residuals = adjusted - design @ coefficients
    df = adjusted.size - int(np.linalg.matrix_rank(design))
    if df < 1 and design.shape[1] > 1:  # as many parameters as days: no sigma; one level has one
        return least_squares(adjusted, None, np.zeros(adjusted.size, dtype=int), 0)
    sigma = float(np.sqrt(residuals @ residuals / df)) if df >= 1 else 0.0
    return float(point @ coefficients), sigma, float(point @ inverse @ point), df


def robust_score(value: float, day: date, window: Mapping[date, float], *, min_days: int,
                 min_relative_spread: float) -> Score | None:
    """Score value (on day) against the window's days with a seasonal, trend-following, robust baseline.

    1. The weekly rhythm (seasonal_factors): per weekday, or weekdays against weekend days,
       whichever predicts the baseline better; none under a week of history. Divided into every day.
    2. The trend: from MIN_DAYS_FOR_TREND days on, a Theil-Sen slope of the adjusted days against
       time, taken out so that the baseline is projected to the scored day.
    3. Outliers: from MIN_DAYS_FOR_OUTLIERS days on, a day whose residual is beyond OUTLIER_Z
       median/MAD sigmas is left out.
    4. The final fit (least_squares) on the days kept, a level per group (and the slope): centre =
       its prediction for the scored day, the spread its t prediction interval (sigma rescaled for
       the cut), floored at min_relative_spread * |centre|.
    Each day's residual for 3 uses weekday levels computed without that day (leave one out), so
    that the cut allows for the error of the levels, as the scored day's residual has it.
    None with fewer than max(min_days, 2) days; zero spread gives the plain score's 0 or None.
    """
    from scipy import stats
    days = sorted(d for d, v in window.items() if np.isfinite(v))
    if len(days) < max(min_days, 2):
        return None
    values = np.array([window[d] for d in days])
    usual = _screen(values, np.array([d.weekday() >= 5 for d in days]), min_relative_spread)
    factor_day, factors_full, factors_loo, group, group_day = seasonal_factors(days, values, day, usual)
    adjusted, adjusted_loo = values / factors_full, values / factors_loo
    age = np.array([(d - day).days for d in days], dtype=float)
    # Theil-Sen ignores up to 29 % of bad days (a quiet week is 9 of 30); beyond a quarter, only the usual
    # days. Not always: a new level still a minority (a deploy) would be left out for two weeks.
    fit = usual if usual.mean() < 0.75 else np.ones(len(days), dtype=bool)
    trend = int(fit.sum()) >= MIN_DAYS_FOR_TREND
    slope = float(stats.theilslopes(adjusted[fit], age[fit]).slope) if trend else 0.0
    level, level_loo = adjusted - slope * age, adjusted_loo - slope * age
    center, sigma = float(np.median(level)), float(stats.median_abs_deviation(level_loo, scale="normal"))
    kept = np.ones(len(days), dtype=bool)
    # The sd of a normal sample cut at +-OUTLIER_Z sigmas, over sigma: gives back sigma from the days kept.
    kept_sd = float(np.sqrt(stats.truncnorm.var(-OUTLIER_Z, OUTLIER_Z)))
    # Under MIN_DAYS_FOR_OUTLIERS days a MAD is too rough to pick outliers by (from 8 days it is
    # often half of sigma): every day is kept.
    rounds = 2 if len(days) >= MIN_DAYS_FOR_OUTLIERS else 0
    # Twice: the MAD picks the outliers, then the standard deviation of the days kept picks them
    # again, since a MAD from 30 days is itself off by 20 % and would cut usual days too.
    for _ in range(rounds):
        cut = OUTLIER_Z * max(sigma, min_relative_spread * abs(center))
        if not cut > 0:
            break
        kept = np.abs(level_loo - center) <= cut
        center = float(level[kept].mean())
        sigma = float(level_loo[kept].std(ddof=1)) / kept_sd if kept.sum() >= 2 else 0.0
    leverage, df = 1.0, 0
    if kept.sum() >= 2:
        center, sigma, leverage, df = least_squares(adjusted[kept], age[kept] if trend else None, group[kept],
                                                    group_day)
        sigma /= kept_sd if rounds else 1.0
    # The band +-WARNING_Z spreads is the t prediction interval a usual day leaves FALSE_WARNINGS_PER_YEAR
    # times a year: widened for the fit's error (the day's leverage: its group's level, the trend) and sigma's.
    tail = FALSE_WARNINGS_PER_YEAR / 365 / 2
    widen = float(np.sqrt(1 + leverage) * stats.t.isf(tail, df) / WARNING_Z) if df >= 1 else 1.0
    spread = max(sigma * widen, min_relative_spread * abs(center))
    scored = value / factor_day
    z: float | None = (scored - center) / spread if spread > 0 else (0.0 if scored == center else None)
    return Score(value=value, mean=float(adjusted.mean()) * factor_day,
                 stddev=float(adjusted.std(ddof=1)) * factor_day, zscore=z, baseline_days=len(days),
                 center=center * factor_day, spread=spread * factor_day, level=center, outliers=int((~kept).sum()))

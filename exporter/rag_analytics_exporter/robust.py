"""The robust baseline (anomaly.baseline robust): a day scored against a weekly rhythm, a trend and the usual days
of its window, with a t prediction interval as its spread. docs/metrics.md says how and why.

A backtest scores every day of a year in this mode, so per call it avoids what costs and never changes: scipy's
distribution functions of constants and whole numbers are computed once (cached), and the leave-one-out levels
are computed with arrays. scipy.stats is imported at the top: anomaly.score_day imports this module only when
the robust mode is used.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import date
from functools import cache
from typing import NamedTuple

import numpy as np
from scipy import stats

from .score import MIN_DAYS_PER_WEEKDAY, Score

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


def _level(values: np.ndarray, idx: list[int], usual: np.ndarray) -> tuple[float, np.ndarray]:
    """A group's level and, per member (in idx's order), the level without it: the mean of its usual days
    (a trimmed mean: more precise than a median of four), or the median of all when under two are usual."""
    kept = [i for i in idx if usual[i]]
    if len(kept) >= MIN_DAYS_PER_WEEKDAY:
        total = float(values[kept].sum())
        return total / len(kept), np.where(usual[idx], (total - values[idx]) / (len(kept) - 1), total / len(kept))
    without = [statistics.median(values[[j for j in idx if j != i]].tolist()) for i in idx]
    return statistics.median(values[idx].tolist()), np.array(without)


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
    return rich if statistic > _f_critical(extra, df) else simple


@cache
def _f_critical(extra: int, df: int) -> float:
    """The F statistic beyond which the test rejects at RHYTHM_TEST_LEVEL: sf(F) < level, for whole degrees
    of freedom that recur window after window."""
    return float(stats.f.isf(RHYTHM_TEST_LEVEL, extra, df))


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
        week = np.array([levels[groups[w]] for w in range(7)])
        for g, (_, without) in fitted.items():
            # _factors with g's level replaced by each member's level without it, all members at once
            weeks = np.tile(week, (without.size, 1))
            weeks[:, [groups[w] == g for w in range(7)]] = without[:, None]
            week_level = weeks.sum(axis=1) / 7
            lowest = np.minimum(without, min((level for h, level in levels.items() if h != g), default=np.inf))
            loo[members[g]] = np.where((week_level > 0) & (lowest > 0), without / week_level, np.nan)
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
    kept_sd = _kept_sd(OUTLIER_Z)
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
    widen = float(np.sqrt(1 + leverage) * _t_band(df) / WARNING_Z) if df >= 1 else 1.0
    spread = max(sigma * widen, min_relative_spread * abs(center))
    scored = value / factor_day
    z: float | None = (scored - center) / spread if spread > 0 else (0.0 if scored == center else None)
    return Score(value=value, mean=float(adjusted.mean()) * factor_day,
                 stddev=float(adjusted.std(ddof=1)) * factor_day, zscore=z, baseline_days=len(days),
                 center=center * factor_day, spread=spread * factor_day, level=center, outliers=int((~kept).sum()))


@cache
def _kept_sd(cut: float) -> float:
    """The sd of a normal sample cut at +-cut sigmas, over sigma: gives back sigma from the days kept."""
    return float(np.sqrt(stats.truncnorm.var(-cut, cut)))


@cache
def _t_band(df: int) -> float:
    """The t quantile that a usual day exceeds, on either side, FALSE_WARNINGS_PER_YEAR times a year."""
    return float(stats.t.isf(FALSE_WARNINGS_PER_YEAR / 365 / 2, df))

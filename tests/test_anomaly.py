"""Anomaly maths against hand-computed values, edges included."""

from __future__ import annotations

import math
import statistics
from datetime import date, timedelta

import pytest
from scipy.stats import f as f_dist
from scipy.stats import t as t_dist
from scipy.stats import truncnorm

from rag_analytics_exporter.anomaly import score_day, weekday_factors, zscore

pytestmark = pytest.mark.unit


def test_normal_case_matches_hand_computation():
    # baseline 10, 12, 14: mean 12, sample variance ((4 + 0 + 4) / 2) = 4, sd 2; (20 - 12) / 2 = 4
    score = zscore(20.0, [10.0, 12.0, 14.0], min_days=3, min_relative_spread=0.0)
    assert score is not None
    assert score.mean == 12.0
    assert score.stddev == 2.0
    assert score.zscore == 4.0
    assert score.baseline_days == 3
    assert score.value == 20.0


def test_value_below_the_baseline_gives_a_negative_score():
    score = zscore(6.0, [10.0, 12.0, 14.0], min_days=3, min_relative_spread=0.0)
    assert score.zscore == -3.0


def test_short_baseline_gives_no_score():
    assert zscore(20.0, [10.0, 12.0], min_days=3, min_relative_spread=0.0) is None
    assert zscore(20.0, [], min_days=2, min_relative_spread=0.0) is None


def test_one_day_of_data_is_never_enough_whatever_the_minimum():
    # a sample standard deviation needs two values
    assert zscore(5.0, [4.0], min_days=1, min_relative_spread=0.0) is None


def test_zero_spread_and_equal_value_scores_zero():
    score = zscore(0.0, [0.0] * 10, min_days=7, min_relative_spread=0.01)
    assert score.zscore == 0.0


def test_zero_spread_zero_mean_and_different_value_is_undefined_not_nan():
    score = zscore(5.0, [0.0] * 10, min_days=7, min_relative_spread=0.01)
    assert score is not None
    assert score.zscore is None
    assert score.stddev == 0.0


def test_flat_baseline_uses_the_relative_spread_floor():
    # mean 100, sd 0, floor 1 % of 100 = 1; (103 - 100) / 1 = 3
    score = zscore(103.0, [100.0] * 10, min_days=7, min_relative_spread=0.01)
    assert score.zscore == pytest.approx(3.0)
    assert score.stddev == 0.0


def test_floor_does_not_change_a_normal_baseline():
    # sd 2 is above 1 % of 12, so the floor plays no part
    assert zscore(20.0, [10.0, 12.0, 14.0], min_days=3, min_relative_spread=0.01).zscore == 4.0


def test_non_finite_baseline_values_are_left_out():
    score = zscore(20.0, [10.0, math.nan, 12.0, math.inf, 14.0], min_days=3, min_relative_spread=0.0)
    assert score.baseline_days == 3
    assert score.zscore == 4.0


def test_score_day_uses_only_the_lookback_window_before_the_day():
    day = date(2026, 3, 31)
    series = {day - timedelta(days=i): 100.0 + i for i in range(1, 40)}  # 101 .. 139
    series[day] = 200.0
    score = score_day(series, day, lookback_days=3, min_days=3, min_relative_spread=0.0)
    # the window is the three days before: 101, 102, 103 -> mean 102, sd 1
    assert score.mean == 102.0
    assert score.stddev == 1.0
    assert score.zscore == 98.0


def test_missing_days_shrink_the_baseline_instead_of_counting_as_zero():
    day = date(2026, 3, 31)
    series = {day - timedelta(days=1): 10.0, day - timedelta(days=3): 14.0, day - timedelta(days=5): 12.0,
              day: 16.0}
    score = score_day(series, day, lookback_days=30, min_days=3, min_relative_spread=0.0)
    assert score.baseline_days == 3
    assert score.mean == 12.0
    assert score.zscore == 2.0


def test_score_day_without_the_day_itself_is_none():
    day = date(2026, 3, 31)
    series = {day - timedelta(days=i): 1.0 + i for i in range(1, 10)}
    assert score_day(series, day, lookback_days=30, min_days=3, min_relative_spread=0.0) is None


def test_thirty_day_case_matches_numpy_free_computation():
    values = [float(v) for v in range(1, 31)]  # 1 .. 30
    mean = sum(values) / 30
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 29)
    score = zscore(60.0, values, min_days=7, min_relative_spread=0.01)
    assert score.zscore == pytest.approx((60.0 - mean) / sd, rel=1e-12)


# The weekday-aware baseline. 2026-03-02 is a Monday.
MONDAY = date(2026, 3, 2)


def weekly(days: int, weekday_value: float, weekend_value: float, before: date = MONDAY) -> dict[date, float]:
    """The `days` days before `before`: weekday_value Monday to Friday, weekend_value on weekends."""
    series = {}
    for k in range(1, days + 1):
        d = before - timedelta(days=k)
        series[d] = weekend_value if d.weekday() >= 5 else weekday_value
    return series


def test_weekday_baseline_catches_a_drop_the_plain_one_misses():
    # Four weeks of 100 on weekdays and 50 on weekends. Weekday medians 100 (x5) and 50 (x2);
    # the week's level is 600/7, so the factors are 7/6 on weekdays and 7/12 on weekends, and
    # every adjusted day is 600/7: spread 0, floored at 1 % of 600/7 = 6/7.
    # A Monday of 60 adjusts to 60 * 6/7 = 360/7: z = (360/7 - 600/7) / (6/7) = -40.
    series = weekly(28, 100.0, 50.0) | {MONDAY: 60.0}
    args = dict(lookback_days=28, min_days=7, min_relative_spread=0.01)
    score = score_day(series, MONDAY, baseline="weekday", **args)
    assert score.zscore == pytest.approx(-40.0)
    assert score.value == 60.0
    assert score.mean == pytest.approx(100.0), "the baseline mean reads as a usual Monday"
    assert score.stddev == pytest.approx(0.0)
    assert score.baseline_days == 28
    # Plain: mean 2400/28 = 85.71, sample sd of 20 x 100 and 8 x 50 = 23.0: z = -1.12, no alarm.
    plain = score_day(series, MONDAY, baseline="plain", **args)
    assert plain.zscore == pytest.approx((60 - 2400 / 28) / math.sqrt((20 * (100 - 2400 / 28) ** 2
                                                                        + 8 * (50 - 2400 / 28) ** 2) / 27))
    assert plain.zscore > -3


def test_weekday_baseline_hand_computed_with_spread():
    # Two weeks: Mondays 10 and 12, Tuesday to Friday 10, weekends 5. Medians: Monday 11,
    # Tuesday-Friday 10, weekend 5; week level (11 + 40 + 10) / 7 = 61/7; Monday factor 77/61.
    # Adjusted Mondays 610/77 and 732/77, every other day 61/7; mean 61/7; the squared
    # deviations are both (61/77)^2, so the sample sd is sqrt(2 (61/77)^2 / 13).
    # A Monday of 16: z = (16 * 61/77 - 61/7) / sd.
    series = weekly(14, 10.0, 5.0) | {MONDAY - timedelta(days=7): 12.0, MONDAY: 16.0}
    score = score_day(series, MONDAY, lookback_days=14, min_days=7, min_relative_spread=0.0, baseline="weekday")
    sd = math.sqrt(2 * (61 / 77) ** 2 / 13)
    assert score.zscore == pytest.approx((16 * 61 / 77 - 61 / 7) / sd, rel=1e-12)
    assert score.mean == pytest.approx(61 / 7 * 77 / 61)  # 11: a usual Monday
    assert score.stddev == pytest.approx(sd * 77 / 61)


def test_a_weekend_day_at_its_usual_level_scores_zero():
    saturday = MONDAY - timedelta(days=2)
    series = weekly(28, 100.0, 50.0, before=saturday) | {saturday: 50.0}
    score = score_day(series, saturday, lookback_days=28, min_days=7, min_relative_spread=0.01, baseline="weekday")
    assert score.zscore == pytest.approx(0.0)


def test_a_holiday_in_the_lookback_does_not_move_its_weekday_factor():
    usual = weekly(28, 100.0, 50.0)
    holiday = usual | {MONDAY - timedelta(days=14): 0.0}
    assert weekday_factors(holiday) == weekday_factors(usual)


@pytest.mark.parametrize("series", [
    weekly(13, 100.0, 50.0) | {MONDAY: 60.0},  # under two weeks: some weekday has a single day
    weekly(28, 100.0, 0.0) | {MONDAY: 60.0},   # no weekend traffic: a weekday level of zero
    {d: v for d, v in weekly(28, 100.0, 50.0).items() if d.weekday() != 2} | {MONDAY: 60.0},  # no Wednesdays
])
def test_without_a_usable_rhythm_the_weekday_baseline_is_the_plain_one(series):
    args = dict(lookback_days=28, min_days=7, min_relative_spread=0.01)
    assert score_day(series, MONDAY, baseline="weekday", **args) == score_day(series, MONDAY, baseline="plain", **args)


# The robust baseline (robust.robust_score). Weekday-only series have no weekend days, so no
# rhythm can be estimated and the figures stay hand-computable.
def weekdays_only(values: list[float], before: date = MONDAY) -> dict[date, float]:
    """values[0] on the last weekday before `before`, values[1] on the one before, and so on."""
    series, d = {}, before
    for value in values:
        d -= timedelta(days=1)
        while d.weekday() >= 5:
            d -= timedelta(days=1)
        series[d] = value
    return series


ROBUST = dict(lookback_days=60, min_days=3, min_relative_spread=0.01, baseline="robust")


def widen(kept: int, trend: bool = False) -> float:
    """The prediction-interval factor: sqrt(1 + 1/n) * t quantile (0.5 false warnings a year) / 3."""
    return math.sqrt(1 + 1 / kept) * t_dist.isf(0.5 / 365 / 2, kept - 1 - trend) / 3


def test_robust_hand_computed_without_rhythm_or_trend():
    # 10, 12, 14, 11, 13: under two weeks, so no day is left out: centre = mean 12, sigma the
    # sample sd sqrt(10 / 4), widened to the prediction interval of 5 days.
    series = weekdays_only([10.0, 12.0, 14.0, 11.0, 13.0]) | {MONDAY: 20.0}
    score = score_day(series, MONDAY, **ROBUST)
    spread = math.sqrt(2.5) * widen(5)
    assert score.center == pytest.approx(12.0)
    assert score.spread == pytest.approx(spread, rel=1e-12)
    assert score.zscore == pytest.approx(8.0 / spread, rel=1e-12)
    assert score.outliers == 0
    assert score.mean == pytest.approx(12.0), "the moments of the baseline, as plain's"
    assert score.stddev == pytest.approx(math.sqrt(2.5))


def test_robust_hand_computed_with_an_outlier_cut():
    # 15 days: 10, 12, 14, 11, 13 three times, but one 14 is 40. Median 12, MAD 1 (sigma 1.4826):
    # 40 is beyond 4 sigmas and left out. The 14 kept: mean 166 / 14, their sample sd (then
    # the kept days are all within 4 of it again), rescaled for the cut, widened for 14 days.
    values = [10.0, 12.0, 14.0, 11.0, 13.0] * 3
    values[2] = 40.0
    kept = [v for v in values if v != 40.0]
    score = score_day(weekdays_only(values) | {MONDAY: 20.0}, MONDAY, **ROBUST)
    sigma = statistics.stdev(kept) / math.sqrt(truncnorm.var(-4.0, 4.0))
    assert score.outliers == 1
    assert score.center == pytest.approx(166 / 14)
    assert score.spread == pytest.approx(sigma * widen(14), rel=1e-12)
    assert score.zscore == pytest.approx((20 - 166 / 14) / (sigma * widen(14)), rel=1e-12)


def test_robust_keeps_a_usual_day_that_a_3_5_sigma_cut_would_leave_out():
    # 15 days around 100: deviations 0 x4, 1 x4, 2 x4, 3 x2 and 6.5, so the MAD is 1 and sigma
    # 1.4826; 106.5 is 4.38 sigmas out. A 4 cut (5.93) leaves it out first, then the sd of the 14
    # kept moves the cut to 6.84 and brings it back: the fit is that of all 15 days. A 3.5 cut
    # (5.19, then 6.00) kept it out, as it left such usual days out 4-5x as often as the t band allows.
    values = [100.0, 102.0, 98.0, 101.0, 99.0, 103.0, 97.0, 100.0, 102.0, 98.0, 101.0, 99.0, 100.0, 100.0, 106.5]
    score = score_day(weekdays_only(values) | {MONDAY: 100.0}, MONDAY, **ROBUST)
    sigma = statistics.stdev(values) / math.sqrt(truncnorm.var(-4.0, 4.0))
    assert score.outliers == 0
    assert score.center == pytest.approx(statistics.mean(values))
    assert score.spread == pytest.approx(sigma * widen(15), rel=1e-12)


def test_robust_leaves_an_outlier_out_where_plain_is_blinded():
    # 13 days of 100 and one of 200: median 100, MAD 0, so the cut is 4 x the 1 % floor (4):
    # 200 is left out, the centre is 100 and the spread the floor, 1. 103 scores 3.
    values = [100.0] * 6 + [200.0] + [100.0] * 7
    series = weekdays_only(values) | {MONDAY: 103.0}
    score = score_day(series, MONDAY, **ROBUST)
    assert (score.center, score.spread, score.outliers) == (pytest.approx(100.0), pytest.approx(1.0), 1)
    assert score.zscore == pytest.approx(3.0)
    # plain: the 200 is in the mean and the sd, and hides everything
    plain = score_day(series, MONDAY, **(ROBUST | {"baseline": "plain"}))
    assert plain.zscore == pytest.approx((103 - statistics.mean(values)) / statistics.stdev(values))
    assert plain.zscore > -0.2


def test_robust_zero_mad_uses_the_floor_and_zero_everything_is_zero_or_undefined():
    flat = weekdays_only([100.0] * 10)
    assert score_day(flat | {MONDAY: 103.0}, MONDAY, **ROBUST).zscore == pytest.approx(3.0)
    zeros = weekdays_only([0.0] * 10)
    assert score_day(zeros | {MONDAY: 0.0}, MONDAY, **ROBUST).zscore == 0.0
    undefined = score_day(zeros | {MONDAY: 5.0}, MONDAY, **ROBUST)
    assert undefined is not None and undefined.zscore is None and undefined.spread == 0.0


def test_robust_without_history_gives_no_score():
    assert score_day(weekdays_only([1.0, 2.0]) | {MONDAY: 3.0}, MONDAY, **ROBUST) is None
    assert score_day({MONDAY: 3.0}, MONDAY, **ROBUST) is None
    assert score_day(weekdays_only([1.0] * 5), MONDAY, **ROBUST) is None, "no value for the day itself"


def test_robust_follows_a_trend_from_three_weeks_on():
    # 2 a calendar day: v = 200 + 2 * (d - day). The Theil-Sen slope is exactly 2, every day
    # detrended is 200, the spread is the floor (2): the day's 200 scores 0 and 206 scores 3.
    days = weekdays_only([0.0] * 25)
    series = {d: 200.0 + 2 * (d - MONDAY).days for d in days}
    assert score_day(series | {MONDAY: 200.0}, MONDAY, **ROBUST).zscore == pytest.approx(0.0, abs=1e-9)
    score = score_day(series | {MONDAY: 206.0}, MONDAY, **ROBUST)
    assert score.zscore == pytest.approx(3.0)
    assert score.center == pytest.approx(200.0)
    # under MIN_DAYS_FOR_TREND days there is no slope: the centre is the mean of the window
    short = {d: v for d, v in series.items() if len([e for e in series if e >= d]) <= 20}
    assert len(short) == 20
    assert score_day(short | {MONDAY: 200.0}, MONDAY, **ROBUST).center == pytest.approx(
        statistics.mean(short.values()))


def test_robust_takes_the_rhythm_out_as_weekday_does():
    # the weekday test's four weeks: every adjusted day is 600/7, the spread the floor 6/7:
    # a Monday of 60 is (360/7 - 600/7) / (6/7) = -40; centre and spread read as a usual Monday.
    series = weekly(28, 100.0, 50.0) | {MONDAY: 60.0}
    score = score_day(series, MONDAY, **(ROBUST | {"lookback_days": 28}))
    assert score.zscore == pytest.approx(-40.0)
    assert score.center == pytest.approx(100.0)
    assert score.spread == pytest.approx(1.0)


def test_robust_with_a_week_of_history_uses_weekdays_against_weekend_days():
    # 8 days: one Saturday, so no per-weekday levels (weekday mode is plain here), but five
    # weekdays and three weekend days: weekdays 100, weekend 50, the Monday of 60 scores -40.
    series = weekly(8, 100.0, 50.0) | {MONDAY: 60.0}
    args = dict(lookback_days=8, min_days=7, min_relative_spread=0.01)
    assert score_day(series, MONDAY, baseline="robust", **args).zscore == pytest.approx(-40.0)
    assert score_day(series, MONDAY, baseline="weekday", **args) == score_day(series, MONDAY, baseline="plain", **args)


def test_robust_keeps_a_weekday_of_its_own_when_the_weekdays_differ():
    # Mondays 150, other weekdays 100, weekends 50: weekdays-against-weekend would flag every
    # Monday; per weekday predicts the baseline exactly, so a Monday of 150 scores 0.
    series = {d: 150.0 if d.weekday() == 0 else v for d, v in weekly(28, 100.0, 50.0).items()}
    score = score_day(series | {MONDAY: 150.0}, MONDAY, **(ROBUST | {"lookback_days": 28}))
    assert score.zscore == pytest.approx(0.0)
    assert score.center == pytest.approx(150.0)


def test_robust_two_anomalous_saturdays_do_not_move_the_saturday_level():
    # Two of four Saturdays at half: their median would be 37.5, not 50. Against all eight
    # weekend days they stand out and are left out, so a usual Saturday still scores 0.
    saturday = MONDAY - timedelta(days=2)
    series = weekly(28, 100.0, 50.0, before=saturday)
    for weeks in (1, 3):
        series[saturday - timedelta(days=7 * weeks)] = 25.0
    score = score_day(series | {saturday: 50.0}, saturday, **(ROBUST | {"lookback_days": 28}))
    assert score.zscore == pytest.approx(0.0)
    assert score.outliers == 2
    weekday = score_day(series | {saturday: 50.0}, saturday, **(ROBUST | {"lookback_days": 28, "baseline": "weekday"}))
    assert weekday.center == pytest.approx(37.5), "weekday mode: a usual Saturday is now 37.5"


def test_robust_non_finite_days_are_left_out():
    clean = weekdays_only([10.0, 12.0, 14.0, 11.0, 13.0]) | {MONDAY: 20.0}
    dirty = clean | {MONDAY - timedelta(days=30): math.nan, MONDAY - timedelta(days=31): math.inf}
    assert score_day(dirty, MONDAY, **ROBUST) == score_day(clean, MONDAY, **ROBUST)


def test_robust_trend_ignores_a_quiet_week_at_the_start_of_the_window():
    # 21 usual days alternating 101 and 99 after 8 quiet days of 30 (28 % of the days). Among
    # the usual days, as many pairs slope up as down (55 each, 100 flat): Theil-Sen's slope is 0,
    # so the quiet days stand out and are left out. The final fit is the least-squares line of
    # the 21 kept days, at the scored day: its intercept. Over all 29 days the 168 pairs across
    # the quiet days would tilt the slope upwards and the centre with it.
    series = weekdays_only([101.0, 99.0] * 10 + [101.0] + [30.0] * 8)
    score = score_day(series | {MONDAY: 100.0}, MONDAY, **ROBUST)
    kept = {d: v for d, v in series.items() if v != 30.0}
    line = statistics.linear_regression([float((d - MONDAY).days) for d in kept], list(kept.values()))
    assert score.center == pytest.approx(line.intercept, rel=1e-12)
    assert abs(score.center - 100.0) < 0.1
    assert score.outliers == 8


def test_robust_spread_is_the_prediction_interval_of_the_scored_days_group():
    # 13 days before a Monday: 9 weekdays around 100 and 4 weekend days around 50; under two weeks,
    # so no cut, no trend, and only weekdays against weekend days. Least squares with a level per
    # group: the scored Monday's prediction is the weekdays' mean, sigma the residual sd of the
    # relative residuals (v / its group's mean - 1) with 13 - 2 degrees of freedom, and the
    # leverage is 1/9 (its level is the mean of 9 days), not 1/13.
    weekday_values = [100.0, 104.0, 97.0, 101.0, 99.0, 103.0, 96.0, 102.0, 98.0]
    weekend_values = [50.0, 52.0, 49.0, 51.0]
    series = weekly(13, 0.0, 0.0)
    wd, we = iter(weekday_values), iter(weekend_values)
    series = {d: next(we) if d.weekday() >= 5 else next(wd) for d in sorted(series)}
    level_wd, level_we = statistics.mean(weekday_values), statistics.mean(weekend_values)
    relative = [v / level_wd - 1 for v in weekday_values] + [v / level_we - 1 for v in weekend_values]
    sigma = math.sqrt(sum(r * r for r in relative) / 11)
    spread = level_wd * sigma * math.sqrt(1 + 1 / 9) * t_dist.isf(0.5 / 365 / 2, 11) / 3
    score = score_day(series | {MONDAY: 110.0}, MONDAY, **(ROBUST | {"lookback_days": 13}))
    assert score.outliers == 0
    assert score.center == pytest.approx(level_wd, rel=1e-12)
    assert score.spread == pytest.approx(spread, rel=1e-12)
    assert score.zscore == pytest.approx((110.0 - level_wd) / spread, rel=1e-12)


def test_robust_per_weekday_only_when_the_f_test_rejects_weekdays_against_weekend_days():
    # 20 days (no trend under 21), weekend days 50, weekdays 100 with a small weekday pattern
    # inside noise: the F statistic of five more levels, hand-computed, keeps two groups at 1 %,
    # and a Monday's centre is the mean of all weekdays. A real Monday peak (test above) does not.
    pattern = {0: [101.0, 97.0, 103.0], 1: [100.0, 104.0, 96.0], 2: [98.0, 102.0, 100.0],
               3: [103.0, 97.0, 99.0], 4: [99.0, 101.0, 102.0]}
    seen = {w: iter(values) for w, values in pattern.items()}
    series = {d: v if d.weekday() >= 5 else next(seen[d.weekday()]) for d, v in sorted(weekly(20, 0.0, 50.0).items())}
    by_weekday = {w: [v for d, v in series.items() if d.weekday() == w] for w in range(5)}
    weekdays = [v for values in by_weekday.values() for v in values]
    rss2 = sum((v / statistics.mean(weekdays) - 1) ** 2 for v in weekdays)
    rss7 = sum((v / statistics.mean(values) - 1) ** 2 for values in by_weekday.values() for v in values)
    assert f_dist.sf((rss2 - rss7) / 5 / (rss7 / (20 - 7)), 5, 13) > 0.01
    score = score_day(series | {MONDAY: 100.0}, MONDAY, **(ROBUST | {"lookback_days": 20}))
    assert score.outliers == 0
    assert score.center == pytest.approx(statistics.mean(weekdays), rel=1e-12)


def test_level_is_the_usual_day_of_the_week_in_every_mode():
    # Weekdays 100, weekends 50: a usual day of the week is 600/7 whichever weekday is scored, in
    # weekday and robust; plain's level is its mean. Live rules compare against it ("a usual
    # day"), not against the band's centre, which on a Monday is a usual Monday (100).
    series = weekly(28, 100.0, 50.0)
    saturday = MONDAY - timedelta(days=2)
    for mode in ("weekday", "robust"):
        monday = score_day(series | {MONDAY: 100.0}, MONDAY, **(ROBUST | {"lookback_days": 28, "baseline": mode}))
        assert (monday.center, monday.level) == (pytest.approx(100.0), pytest.approx(600 / 7)), mode
        earlier = {d: v for d, v in weekly(28, 100.0, 50.0, before=saturday).items()}
        sat = score_day(earlier | {saturday: 50.0}, saturday, **(ROBUST | {"lookback_days": 28, "baseline": mode}))
        assert (sat.center, sat.level) == (pytest.approx(50.0), pytest.approx(600 / 7)), mode
    plain = score_day(series | {MONDAY: 100.0}, MONDAY, **(ROBUST | {"lookback_days": 28, "baseline": "plain"}))
    assert plain.level == plain.mean == pytest.approx(statistics.mean(series.values()))

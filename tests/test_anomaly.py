"""Anomaly maths against hand-computed values, edges included."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from rag_analytics_exporter.anomaly import score_day, weekday_factors, zscore


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

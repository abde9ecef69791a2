"""Anomaly maths against hand-computed values, edges included."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from rag_analytics_exporter.anomaly import score_day, zscore


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

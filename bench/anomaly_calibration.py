"""Is the robust band as wide as designed? False warnings on synthetic days that are exactly normal.

    .venv/bin/python bench/anomaly_calibration.py                   # 100 series-years a case, 7-10 min here
    .venv/bin/python bench/anomaly_calibration.py --outlier-z 3.5   # the cut before 2026-12-02, for comparison
    .venv/bin/python bench/anomaly_calibration.py --outlier-z inf   # no screen and no cut

The robust spread is designed so that a usual day warns (|z| > 3) FALSE_WARNINGS_PER_YEAR times a
series-year. That holds exactly only for normal days, so here the days are normal: the demo's
weekly rhythm (weekend days 5 % lower) times 1 + N(0, noise), the latency series' 3 % and the
token series' 7 %, each clean and with the evaluation's anomalies left in (16 a series-year of
+-30 % and +-50 %, never scored). bench/anomaly_eval.py has 30 latency series-years, too few to
tell 0.5 from 0.7 (a count of 15 has a 95 % interval of 8-25); this has 100 a case. The interval
printed is the exact Poisson one (scipy.stats.chi2) of the count. Rates are per year of usual days
(bench/anomaly_eval.py's per series-year, about 4 % more days where anomalies are left in).
--outlier-z sets robust.OUTLIER_Z, which both the screen and the cut use. It prints figures, fails on nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from scipy.stats import chi2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anomaly_eval import CRITICAL, PER_SIZE_AND_KIND, SIZES, THRESHOLD  # the evaluation's case, beside this file

from rag_analytics_exporter import anomaly, robust
from rag_analytics_exporter.config import Config

CONFIG = Config()  # the defaults, as the evaluation scores with
ANOMALIES_PER_YEAR = len(SIZES) * 2 * PER_SIZE_AND_KIND  # weekday and weekend days of each size


def one_series(job: tuple[float, bool, int, float]) -> tuple[int, int, int, int]:
    """Warnings, criticals, scored days and days left out of the baselines, over one series-year."""
    noise, contaminated, seed, outlier_z = job
    robust.OUTLIER_Z = outlier_z
    rng = np.random.default_rng(seed)
    days = [date(2025, 1, 6) + timedelta(days=k) for k in range(365 + CONFIG.lookback_days)]
    values = {d: (0.95 if d.weekday() >= 5 else 1.0) * (1 + rng.normal(0, noise)) for d in days}
    anomalous = set()
    if contaminated:
        for d in rng.choice(len(days), ANOMALIES_PER_YEAR, replace=False):
            values[days[d]] *= 1 + rng.choice(SIZES)
            anomalous.add(days[d])
    warnings = criticals = scored = outliers = 0
    for day in days[CONFIG.lookback_days:]:
        if day in anomalous:
            continue
        score = anomaly.score_day(values, day, lookback_days=CONFIG.lookback_days, min_days=CONFIG.min_baseline_days,
                                  min_relative_spread=CONFIG.min_relative_spread, baseline="robust")
        if score is None or score.zscore is None:
            continue
        scored += 1
        warnings += abs(score.zscore) > THRESHOLD
        criticals += abs(score.zscore) > CRITICAL
        outliers += score.outliers
    return warnings, criticals, scored, outliers


def poisson_interval(count: int) -> tuple[float, float]:
    """The exact (Garwood) 95 % interval of a Poisson count."""
    low = chi2.ppf(0.025, 2 * count) / 2 if count else 0.0
    return low, chi2.ppf(0.975, 2 * count + 2) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=100, help="series-years per case")
    parser.add_argument("--outlier-z", type=float, default=robust.OUTLIER_Z)
    args = parser.parse_args()
    print(f"robust, cut at {args.outlier_z} sigmas, {args.series} series-years a case; design: "
          f"{robust.FALSE_WARNINGS_PER_YEAR} warnings a series-year\n")
    print("| noise | anomalies in the data | warnings a series-year (95 % interval) | criticals "
          "| days left out a window |")
    print("|---:|---|---:|---:|---:|")
    with multiprocessing.Pool() as pool:
        for case, (noise, contaminated) in enumerate((n, c) for n in (0.03, 0.07) for c in (False, True)):
            # each case its own days, so that the rows are independent; the same ones for every --outlier-z
            jobs = [(noise, contaminated, case * args.series + k, args.outlier_z) for k in range(args.series)]
            parts = pool.map(one_series, jobs)
            warnings, criticals, scored, outliers = (sum(part) for part in zip(*parts, strict=True))
            years = scored / 365
            low, high = poisson_interval(warnings)
            left_in = f"{ANOMALIES_PER_YEAR} a year" if contaminated else "none"
            print(f"| {noise:.0%} | {left_in} | {warnings / years:.2f} "
                  f"({low / years:.2f}-{high / years:.2f}) | {criticals / years:.2f} | {outliers / scored:.3f} |")


if __name__ == "__main__":
    main()

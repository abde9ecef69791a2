"""The best ±30 % detection any baseline can reach on the evaluation's token series, at 0.5 false warnings a year.

    .venv/bin/python bench/anomaly_ceiling.py

A usual day leaves a band that is crossed 0.5 times a series-year (both sides) only if the band
is ±3.20 sigma wide, with sigma and the day's level known exactly: the ideal detector. A ±30 %
change is 0.3 / sigma sigmas, caught with probability Phi(0.3 / sigma - 3.20). With sigma and
the level estimated from 30 days (the robust mode's Student-t interval: 27 degrees of freedom and
the scored day's leverage, 0.157 on a weekday, 0.242 on a weekend day), the band is wider, and the
rate is averaged over sigma-hat's chi-square spread. sigma per series and kind of day is measured
on the same data as bench/anomaly_eval.py (5 years, seed 42), relative to the kind's mean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import chi2, norm
from scipy.stats import t as t_dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anomaly_eval import demo_series

TAIL = 0.5 / 365 / 2  # one side of 0.5 false warnings a year
DF = 27
LEVERAGE = {False: 0.157, True: 0.242}  # weekday, weekend day: the robust fit's, measured


def main() -> None:
    known = norm.isf(TAIL)
    print(f"Ideal band: ±{known:.2f} sigma. A ±30 % change, caught:\n")
    print("| series | days | sigma (day to day) | ±30 % in sigmas | ideal (sigma known) | sigma from 30 days |")
    print("|---|---|---:|---:|---:|---:|")
    quantiles = np.linspace(0.0005, 0.9995, 2000)
    for name, series in demo_series(5, 42, 30).items():
        if not name.startswith("tokens"):
            continue
        for weekend in (False, True):
            values = np.array([v for d, v in series.items() if (d.weekday() >= 5) == weekend])
            sigma = float(np.std(values / values.mean(), ddof=1))
            leverage = LEVERAGE[weekend]
            band = t_dist.isf(TAIL, DF) * np.sqrt(1 + leverage) * sigma * np.sqrt(chi2.ppf(quantiles, DF) / DF)
            estimated = float(norm.sf((band - 0.3) / (sigma * np.sqrt(1 + leverage))).mean())
            print(f"| {name.split()[1]} | {'weekend' if weekend else 'weekdays'} | {sigma:.2%} | {0.3 / sigma:.2f} | "
                  f"{norm.sf(known - 0.3 / sigma):.1%} | {estimated:.1%} |")
    print(f"\n90 % needs sigma <= {0.3 / (known + norm.isf(0.1)):.2%} even with sigma known.")


if __name__ == "__main__":
    main()

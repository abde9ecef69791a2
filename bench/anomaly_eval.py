"""How well the two anomaly baselines separate real anomalies from the weekly rhythm. Prints tables.

    .venv/bin/python bench/anomaly_eval.py                 # 5 years of demo data, 16 anomalies a series-year
    .venv/bin/python bench/anomaly_eval.py --years 1 --seed 7

The data is seed-demo's generator (weekday traffic 1.8x the weekend's, weekend latency 5 %
lower, day-to-day noise of 3-5 %), without its own injected anomalies. Into each series
(the six latency components and the four models), and each year, this script multiplies 16
days by a known factor: +30 %, +50 %, -30 % and -50 %, each on two weekdays and two weekend
days, at least four days apart. The anomalous days stay in the data, so they are in the
baseline of the days after them, as in production. Every day is then scored by the exporter's
own anomaly.score_day, as yesterday's value, with each baseline:
* false alarms: |z| > 3 on a day with no injected anomaly, per series and year, by direction;
* detection: z beyond 3 in the injected direction (+3 for a rise, -3 for a drop);
* delay: the exporter scores a day when it is over, so a detected anomaly alerts the day
  after it (once the rules' 15 m `for:` has passed); one that is not detected then never is.
It is an evaluation, not a test: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporter"))

from rag_analytics_exporter.anomaly import score_day  # noqa: E402
from rag_analytics_exporter.config import Config  # noqa: E402
from rag_analytics_exporter.seed import DemoScale, generate  # noqa: E402

SIZES = (0.3, 0.5, -0.3, -0.5)
PER_SIZE_AND_KIND = 2  # weekday days and weekend days, per size, series and year
THRESHOLD = 3.0  # the warning threshold; false alarms are also counted at the critical one
CRITICAL = 6.0


def demo_series(years: int, seed: int, lookback: int) -> dict[str, dict[date, float]]:
    """Per series ('latency llm', 'tokens gpt-4o', ...), the daily value over `years` years plus a lookback."""
    at = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    rows = generate(DemoScale(days=365 * years + lookback + 1, chunks=0), seed=seed, at=at, anomalies=False)
    today = at.date()
    series: dict[str, dict[date, float]] = defaultdict(dict)
    for day, component, _, _, mean_ms, *_ in rows["latency_metrics"]:
        if day < today:  # today is partial
            series[f"latency {component}"][day] = mean_ms
    for day, model, _, _, _, total, *_ in rows["token_usage_daily"]:
        if day < today:
            series[f"tokens {model}"][day] = float(total)
    return series


def inject(values: dict[date, float], scored: list[date], rng: np.random.Generator) -> dict[date, float]:
    """Pick the anomalous days of one series (size per day), spaced at least four days apart."""
    chosen: dict[date, float] = {}
    years = len(scored) // 365
    for size in SIZES:
        for weekend in (False, True):
            candidates = [d for d in scored if (d.weekday() >= 5) == weekend]
            placed = 0
            while placed < PER_SIZE_AND_KIND * years:
                day = candidates[rng.integers(len(candidates))]
                if all(abs((day - other).days) >= 4 for other in chosen):
                    chosen[day] = size
                    placed += 1
    return chosen


def evaluate(years: int, seed: int, config: Config) -> None:
    rng = np.random.default_rng(seed)
    series = demo_series(years, seed, config.lookback_days)
    any_series = next(iter(series.values()))
    last = max(any_series)
    scored = [last - timedelta(days=k) for k in range(365 * years)]
    # (baseline, kind) -> direction -> count of false alarms; detections per (size, weekend)
    false_alarms: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    detected: dict[tuple[str, str, float, bool], list[bool]] = defaultdict(list)
    series_count: dict[str, int] = defaultdict(int)
    for name, clean in series.items():
        kind = name.split()[0]
        series_count[kind] += 1
        anomalies = inject(clean, scored, rng)
        values = {d: v * (1 + anomalies.get(d, 0.0)) for d, v in clean.items()}
        for baseline in ("plain", "weekday"):
            for day in scored:
                score = score_day(values, day, lookback_days=config.lookback_days, min_days=config.min_baseline_days,
                                  min_relative_spread=config.min_relative_spread, baseline=baseline)
                z = score.zscore if score is not None and score.zscore is not None else 0.0
                if day in anomalies:
                    size = anomalies[day]
                    detected[(baseline, kind, size, day.weekday() >= 5)].append(
                        z > THRESHOLD if size > 0 else z < -THRESHOLD)
                else:
                    counts = false_alarms[(baseline, kind)]
                    counts["high"] += z > THRESHOLD
                    counts["low"] += z < -THRESHOLD
                    counts["high critical"] += z > CRITICAL
                    counts["low critical"] += z < -CRITICAL

    print(f"{years} year(s) of demo data (seed {seed}), lookback {config.lookback_days} days, |z| > {THRESHOLD:g}; "
          f"{series_count['latency']} latency series, {series_count['tokens']} token series; "
          f"{PER_SIZE_AND_KIND * len(SIZES) * 2} injected anomalies per series-year\n")
    print("False alarms per series and year (days without an injected anomaly)\n")
    print("| baseline | series | high (z > 3) | low (z < -3) | high (z > 6) | low (z < -6) |")
    print("|---|---|---:|---:|---:|---:|")
    for baseline in ("plain", "weekday"):
        for kind in ("latency", "tokens"):
            counts = false_alarms[(baseline, kind)]
            per = series_count[kind] * years
            print(f"| {baseline} | {kind} | " + " | ".join(
                f"{counts[key] / per:.2f}" for key in ("high", "low", "high critical", "low critical")) + " |")
    print("\nDetection rate per anomaly size, and the median delay (the day after, or missed)\n")
    print("| baseline | series | anomaly | weekdays | weekend days | median delay |")
    print("|---|---|---:|---:|---:|---|")
    for baseline in ("plain", "weekday"):
        for kind in ("latency", "tokens"):
            for size in SIZES:
                weekday = detected[(baseline, kind, size, False)]
                weekend = detected[(baseline, kind, size, True)]
                # A detected anomaly alerts the day after; a missed one never: the median of the
                # delays is the day after exactly when at least half were detected.
                delay = "1 day" if statistics.mean(weekday + weekend) >= 0.5 else "missed"
                print(f"| {baseline} | {kind} | {size:+.0%} | {statistics.mean(weekday):.0%} | "
                      f"{statistics.mean(weekend):.0%} | {delay} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    evaluate(args.years, args.seed, Config())


if __name__ == "__main__":
    main()

"""How well each anomaly baseline separates real anomalies from the weekly rhythm, on easy and hard cases.

    .venv/bin/python bench/anomaly_eval.py                 # 5 years of demo data, every case (about 18 min here)
    .venv/bin/python bench/anomaly_eval.py --years 1 --seed 7

The data is seed-demo's generator (weekday traffic 1.8x the weekend's, weekend latency 5 %
lower, day-to-day noise of 3-5 %), without its own injected anomalies: six latency series
(the components) and four token series (the models). Every day is scored by the exporter's own
anomaly.score_day, as yesterday's value, with every baseline (plain, weekday, robust) and the
default config (30 days of lookback, at least 7 days, a 1 % spread floor). A warning is |z| > 3,
a critical |z| > 6; an anomaly is detected when z is beyond 3 in its direction.

The cases:
* main: 16 days per series and year multiplied by +30 %, +50 %, -30 % and -50 % (each on two
  weekdays and two weekend days, four days apart at least), left in the data so that later
  baselines see them, as in production. False alarms are counted on every other day.
* contamination: one +-30 % anomaly, then a second of the same size 1 to 28 days later.
* level shift: latency 30 % higher for good from one day on; days of alerts until accepted.
* growth: +3 % a week for a year (the main case's anomalies on top).
* holidays: a quiet day (30 % of the traffic) every 17-25 days; and a quiet week (nine days)
  once a year, with the 30 days after it scored clean and with a +-30 % anomaly.
* heavy tails: the demo's weekly levels with Student-t (3 degrees of freedom) or lognormal
  day-to-day noise instead of normal, the main case's anomalies on top.
* short history: a series with only 8, 14 or 21 days before the scored day.
It is an evaluation, not a test: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporter"))

from rag_analytics_exporter.anomaly import BASELINES, score_day
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.seed import DemoScale, generate

SIZES = (0.3, 0.5, -0.3, -0.5)
PER_SIZE_AND_KIND = 2  # weekday days and weekend days, per size, series and year
THRESHOLD = 3.0  # the warning threshold; false alarms are also counted at the critical one
CRITICAL = 6.0
KINDS = ("latency", "tokens")
GAPS = (1, 2, 3, 7, 14, 28)  # days between a first anomaly and a second of the same size
BLOCK = 75  # days per contamination / level-shift scenario: 30 of clean lookback, then the case
Series = dict[date, float]


def demo_series(years: int, seed: int, lookback: int) -> dict[str, Series]:
    """Per series ('latency llm', 'tokens gpt-4o', ...), the daily value over `years` years plus a lookback."""
    at = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    rows = generate(DemoScale(days=365 * years + lookback + 1, chunks=0), seed=seed, at=at, anomalies=False)
    today = at.date()
    series: dict[str, Series] = defaultdict(dict)
    for day, component, _, _, mean_ms, *_ in rows["latency_metrics"]:
        if day < today:  # today is partial
            series[f"latency {component}"][day] = mean_ms
    for day, model, _, _, _, total, *_ in rows["token_usage_daily"]:
        if day < today:
            series[f"tokens {model}"][day] = float(total)
    return series


class Scorer:
    """z of a day in one mode, 0 where there is none (no alarm), with the default config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.calls = 0

    def __call__(self, values: Series, day: date, mode: str) -> float:
        self.calls += 1
        score = score_day(values, day, lookback_days=self.config.lookback_days,
                          min_days=self.config.min_baseline_days,
                          min_relative_spread=self.config.min_relative_spread, baseline=mode)
        return score.zscore if score is not None and score.zscore is not None else 0.0


def inject(scored: list[date], rng: np.random.Generator) -> dict[date, float]:
    """Pick the anomalous days of one series (size per day), spaced at least four days apart."""
    chosen: dict[date, float] = {}
    years = max(len(scored) // 365, 1)
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


def caught(z: float, size: float) -> bool:
    return bool(z > THRESHOLD if size > 0 else z < -THRESHOLD)


class Tally:
    """False alarms per (mode, kind) and detections per (mode, kind, size, weekend)."""

    def __init__(self) -> None:
        self.alarms: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.clean_days: dict[tuple[str, str], int] = defaultdict(int)
        self.detected: dict[tuple[str, str, float, bool], list[bool]] = defaultdict(list)
        # series-years scored, where a whole span was (the old design's unit); else clean days / 365
        self.exposure: dict[tuple[str, str], float] = defaultdict(float)

    def clean(self, mode: str, kind: str, z: float) -> None:
        counts = self.alarms[(mode, kind)]
        self.clean_days[(mode, kind)] += 1
        counts["high"] += z > THRESHOLD
        counts["low"] += z < -THRESHOLD
        counts["high critical"] += z > CRITICAL
        counts["low critical"] += z < -CRITICAL

    def anomaly(self, mode: str, kind: str, size: float, day: date, z: float) -> None:
        self.detected[(mode, kind, size, day.weekday() >= 5)].append(caught(z, size))

    def per_year(self, mode: str, kind: str, key: str) -> float:
        """Alarms per series-year scored (per clean day times 365 where no whole span was scored)."""
        years = self.exposure.get((mode, kind)) or self.clean_days[(mode, kind)] / 365
        return self.alarms[(mode, kind)][key] / years if years else float("nan")

    def rate(self, mode: str, kind: str, size: float, weekend: bool | None = None) -> float:
        hits = [h for w in ((False, True) if weekend is None else (weekend,))
                for h in self.detected[(mode, kind, size, w)]]
        return statistics.mean(hits) if hits else float("nan")


def score_with_anomalies(series: dict[str, Series], scored: list[date], rng: np.random.Generator,
                         score: Scorer, tally: Tally, skip: Callable[[str, date], bool] = lambda _n, _d: False,
                         sizes: Iterable[float] | None = None) -> None:
    """The main case's protocol on any set of series: inject, keep the anomalies in, score every day."""
    for name, clean in series.items():
        kind = name.split()[0]
        anomalies = {d: s for d, s in inject([d for d in scored if not skip(name, d)], rng).items()
                     if sizes is None or s in sizes}
        values = {d: v * (1 + anomalies.get(d, 0.0)) for d, v in clean.items()}
        for mode in BASELINES:
            tally.exposure[(mode, kind)] += len(scored) / 365
            for day in scored:
                if skip(name, day):
                    continue
                z = score(values, day, mode)
                if day in anomalies:
                    tally.anomaly(mode, kind, anomalies[day], day, z)
                else:
                    tally.clean(mode, kind, z)


def false_alarm_table(tally: Tally, kinds: Iterable[str] = KINDS) -> None:
    print("| baseline | series | high (z > 3) | low (z < -3) | high (z > 6) | low (z < -6) |")
    print("|---|---|---:|---:|---:|---:|")
    for mode in BASELINES:
        for kind in kinds:
            print(f"| {mode} | {kind} | " + " | ".join(
                f"{tally.per_year(mode, kind, key):.2f}" for key in ("high", "low", "high critical", "low critical"))
                + " |")


def detection_table(tally: Tally, sizes: Iterable[float] = SIZES, kinds: Iterable[str] = KINDS,
                    delay: bool = True) -> None:
    print("| baseline | series | anomaly | weekdays | weekend days |" + (" median delay |" if delay else ""))
    print("|---|---|---:|---:|---:|" + ("---|" if delay else ""))
    for mode in BASELINES:
        for kind in kinds:
            for size in sizes:
                row = (f"| {mode} | {kind} | {size:+.0%} | {tally.rate(mode, kind, size, False):.0%} | "
                       f"{tally.rate(mode, kind, size, True):.0%} |")
                if delay:
                    # A detected anomaly alerts the day after; a missed one never: the median of the
                    # delays is the day after exactly when at least half were detected.
                    row += " 1 day |" if tally.rate(mode, kind, size) >= 0.5 else " missed |"
                print(row)


def main_case(series: dict[str, Series], scored: list[date], seed: int, score: Scorer) -> Tally:
    tally = Tally()
    score_with_anomalies(series, scored, np.random.default_rng(seed), score, tally)
    print("## Main case: 16 anomalies per series-year, left in the data\n")
    print("False alarms per series and year (days without an injected anomaly)\n")
    false_alarm_table(tally)
    print("\nDetection rate per anomaly size, and the median delay (the day after, or missed)\n")
    detection_table(tally)
    return tally


def blocks(scored: list[date]) -> list[date]:
    """Start days of the disjoint BLOCK-day scenarios inside the scored span."""
    first, last = min(scored), max(scored)
    return [first + timedelta(days=k) for k in range(0, (last - first).days - BLOCK + 2, BLOCK)]


def contamination_case(series: dict[str, Series], scored: list[date], seed: int,
                       score: Scorer) -> dict[tuple[str, str, int | None], list[bool]]:
    """A first +-30 % anomaly after 30 clean days, a second of the same size `gap` days later."""
    rng = np.random.default_rng(seed + 1)
    hits: dict[tuple[str, str, int | None], list[bool]] = defaultdict(list)  # gap None: the first one
    for name, clean in series.items():
        kind = name.split()[0]
        for start in blocks(scored):
            first = start + timedelta(days=35 + int(rng.integers(7)))
            size = 0.3 if rng.integers(2) else -0.3
            for mode in BASELINES:
                hits[(mode, kind, None)].append(caught(score(clean | {first: clean[first] * (1 + size)}, first, mode),
                                                       size))
                for gap in GAPS:
                    second = first + timedelta(days=gap)
                    values = clean | {first: clean[first] * (1 + size), second: clean[second] * (1 + size)}
                    hits[(mode, kind, gap)].append(caught(score(values, second, mode), size))
    print("\n## Contamination: a second +-30 % anomaly some days after a first, both left in the data\n")
    print("Detection rate of the first, and of the second by days after the first\n")
    print("| baseline | series | first | " + " | ".join(f"{g} d later" for g in GAPS) + " |")
    print("|---|---|---:|" + "---:|" * len(GAPS))
    for mode in BASELINES:
        for kind in KINDS:
            print(f"| {mode} | {kind} | {statistics.mean(hits[(mode, kind, None)]):.0%} | " + " | ".join(
                f"{statistics.mean(hits[(mode, kind, g)]):.0%}" for g in GAPS) + " |")
    return hits


def level_shift_case(series: dict[str, Series], scored: list[date], seed: int,
                     score: Scorer) -> dict[str, list[int]]:
    """Latency 30 % higher for good from a day on: days alerted in the 35 days after, and when the last was."""
    rng = np.random.default_rng(seed + 2)
    alerted: dict[str, list[int]] = defaultdict(list)
    last_alert: dict[str, list[int]] = defaultdict(list)
    low: dict[str, int] = defaultdict(int)
    events = 0
    for name, clean in series.items():
        if not name.startswith("latency"):
            continue
        for start in blocks(scored):
            shift = start + timedelta(days=35 + int(rng.integers(7)))
            values = {d: v * (1.3 if d >= shift else 1.0) for d, v in clean.items()}
            events += 1
            for mode in BASELINES:
                zs = [score(values, shift + timedelta(days=k), mode) for k in range(35)]
                days = [k for k, z in enumerate(zs) if z > THRESHOLD]
                alerted[mode].append(len(days))
                last_alert[mode].append(max(days) + 1 if days else 0)
                low[mode] += sum(z < -THRESHOLD for z in zs)
    print("\n## Level shift: latency 30 % higher for good (a deploy)\n")
    print(f"{events} shifts over the latency series; the 35 days from the shift on are scored\n")
    print("| baseline | days alerted (median) | days alerted (min-max) | last alert, days after the shift (median) | "
          "false low alarms per shift |")
    print("|---|---:|---:|---:|---:|")
    for mode in BASELINES:
        print(f"| {mode} | {statistics.median(alerted[mode]):g} | {min(alerted[mode])}-{max(alerted[mode])} | "
              f"{statistics.median(last_alert[mode]):g} | {low[mode] / events:.2f} |")
    return alerted


def growth_case(series: dict[str, Series], seed: int, score: Scorer) -> Tally:
    """+3 % a week for a year, from the first day of the lookback, the main case's anomalies on top."""
    tally = Tally()
    grown = {}
    for name, clean in series.items():
        first = min(clean)
        span = sorted(clean)[-365 - 31:]
        grown[name] = {d: clean[d] * 1.03 ** ((d - span[0]).days / 7) for d in span if d >= first}
    scored = sorted(next(iter(grown.values())), reverse=True)[:365]
    score_with_anomalies(grown, scored, np.random.default_rng(seed + 3), score, tally)
    print("\n## Growth: +3 % a week for a year, with the main case's anomalies\n")
    print("False alarms per series and year\n")
    false_alarm_table(tally)
    print("\nDetection of +-30 %\n")
    detection_table(tally, sizes=(0.3, -0.3), delay=False)
    return tally


def holiday_case(series: dict[str, Series], scored: list[date], seed: int, score: Scorer) -> tuple[Tally, Tally]:
    """Token series with quiet days (30 % of the traffic): one every 17-25 days; and a nine-day week a year."""
    rng = np.random.default_rng(seed + 4)
    tokens = {n: s for n, s in series.items() if n.startswith("tokens")}
    first_day = min(min(s) for s in tokens.values())
    holidays: set[date] = set()
    day = first_day + timedelta(days=int(rng.integers(17, 26)))
    while day <= max(scored):
        holidays.add(day)
        day += timedelta(days=int(rng.integers(17, 26)))
    quiet = {n: {d: v * (0.3 if d in holidays else 1.0) for d, v in s.items()} for n, s in tokens.items()}
    days_tally = Tally()
    flagged: dict[str, list[bool]] = defaultdict(list)
    score_with_anomalies(quiet, scored, np.random.default_rng(seed + 5), score, days_tally,
                         skip=lambda _n, d: d in holidays, sizes=(0.3, -0.3))
    for _name, values in quiet.items():
        for mode in BASELINES:
            flagged[mode].extend(bool(score(values, d, mode) < -THRESHOLD) for d in scored if d in holidays)

    week_tally = Tally()
    week_flagged: dict[str, list[bool]] = defaultdict(list)
    for _name, clean in tokens.items():
        for year in range(max(len(scored) // 365, 1)):
            year_start = min(scored) + timedelta(days=365 * year)
            start = year_start + timedelta(days=int(rng.integers(0, 300)))
            week = {start + timedelta(days=k) for k in range(9)}
            values = {d: v * (0.3 if d in week else 1.0) for d, v in clean.items()}
            after = [start + timedelta(days=9 + k) for k in range(30)]
            for mode in BASELINES:
                week_flagged[mode].extend(bool(score(values, d, mode) < -THRESHOLD) for d in sorted(week))
                for d in after:
                    week_tally.clean(mode, "tokens", score(values, d, mode))
                    for size in (0.3, -0.3):
                        week_tally.anomaly(mode, "tokens", size, d,
                                           score(values | {d: values[d] * (1 + size)}, d, mode))
    print("\n## Holidays (token series): quiet days at 30 % of the traffic\n")
    print(f"One quiet day every 17-25 days ({len([d for d in scored if d in holidays])} in the scored span), "
          "with +-30 % anomalies on other days. False alarms on the other days, and the share of quiet days "
          "flagged low (expected: they are quiet)\n")
    print("| baseline | false high a year | false low a year | false critical a year | +30 % caught | -30 % caught | "
          "quiet days flagged |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in BASELINES:
        crit = sum(days_tally.per_year(mode, "tokens", f"{side} critical") for side in ("high", "low"))
        print(f"| {mode} | {days_tally.per_year(mode, 'tokens', 'high'):.2f} | "
              f"{days_tally.per_year(mode, 'tokens', 'low'):.2f} | {crit:.2f} | "
              f"{days_tally.rate(mode, 'tokens', 0.3):.0%} | {days_tally.rate(mode, 'tokens', -0.3):.0%} | "
              f"{statistics.mean(flagged[mode]):.0%} |")
    print("\nA quiet week (nine days) once a year; the 30 days after it scored clean, and each with +-30 %\n")
    print("| baseline | quiet days flagged | false alarms in the 30 days after, per week | +30 % caught after | "
          "-30 % caught after |")
    print("|---|---:|---:|---:|---:|")
    for mode in BASELINES:
        events = len(week_flagged[mode]) / 9
        alarms = week_tally.alarms[(mode, "tokens")]
        print(f"| {mode} | {statistics.mean(week_flagged[mode]):.0%} | "
              f"{(alarms['high'] + alarms['low']) / events:.2f} | "
              f"{week_tally.rate(mode, 'tokens', 0.3):.0%} | {week_tally.rate(mode, 'tokens', -0.3):.0%} |")
    return days_tally, week_tally


def heavy_tail_case(series: dict[str, Series], scored: list[date], seed: int, score: Scorer) -> dict[str, Tally]:
    """The demo's weekday levels with heavy-tailed or skewed day-to-day noise, and the main case's anomalies."""
    rng = np.random.default_rng(seed + 6)
    tallies = {}
    for label, noise in (
        # Student-t with 3 degrees of freedom, scaled to the demo's interquartile range (3 % and 6 %)
        ("Student-t (3 df)", lambda scale, n: 1 + np.clip(rng.standard_t(3, n) * scale * 1.349 / 1.531, -0.9, None)),
        # lognormal with sigma 0.1: right-skewed, a slow day is likelier than a fast one
        ("lognormal (sigma 0.1)", lambda scale, n: rng.lognormal(0.0, 0.1, n)),
    ):
        noisy = {}
        for name, clean in series.items():
            days = sorted(clean)
            levels = {w: statistics.median(clean[d] for d in days if d.weekday() == w) for w in range(7)}
            factors = noise(0.03 if name.startswith("latency") else 0.06, len(days))
            noisy[name] = {d: levels[d.weekday()] * f for d, f in zip(days, factors, strict=False)}
        tally = Tally()
        score_with_anomalies(noisy, scored, np.random.default_rng(seed + 7), score, tally)
        tallies[label] = tally
        print(f"\n## Heavy tails: {label} day-to-day noise, with the main case's anomalies\n")
        false_alarm_table(tally)
        print()
        detection_table(tally, sizes=(0.3, -0.3), delay=False)
    return tallies


def short_history_case(series: dict[str, Series], scored: list[date], seed: int, score: Scorer) -> None:
    """A new series: only `n` days before the scored day; scored clean and with +-30 %."""
    rng = np.random.default_rng(seed + 8)
    sample = sorted(rng.choice(len(scored), size=min(150, len(scored)), replace=False))
    print("\n## Short history: a new series with 8, 14 or 21 days before the scored day\n")
    print("| baseline | days | series | false warnings a year | false critical a year | +30 % weekdays | "
          "+30 % weekend | -30 % weekdays | -30 % weekend |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (8, 14, 21):
        tally = Tally()
        for name, clean in series.items():
            kind = name.split()[0]
            for i in sample:
                day = scored[i]
                values = {d: v for d, v in clean.items() if day - timedelta(days=n) <= d <= day}
                for mode in BASELINES:
                    tally.clean(mode, kind, score(values, day, mode))
                    for size in (0.3, -0.3):
                        tally.anomaly(mode, kind, size, day, score(values | {day: values[day] * (1 + size)}, day, mode))
        for mode in BASELINES:
            for kind in KINDS:
                warn = tally.per_year(mode, kind, "high") + tally.per_year(mode, kind, "low")
                crit = tally.per_year(mode, kind, "high critical") + tally.per_year(mode, kind, "low critical")
                print(f"| {mode} | {n} | {kind} | {warn:.1f} | {crit:.1f} | "
                      + " | ".join(f"{tally.rate(mode, kind, s, w):.0%}" for s in (0.3, -0.3) for w in (False, True))
                      + " |")


def targets(main: Tally, contamination: dict[tuple[str, str, int | None], list[bool]]) -> None:
    print("\n## The targets, per baseline (main case and contamination)\n")
    print("| baseline | worst +-30 % detection (weekdays, weekend, both kinds) | false warnings per series-year "
          "(worst kind) | false critical per series-year | second 7 d later / first |")
    print("|---|---:|---:|---:|---:|")
    for mode in BASELINES:
        worst = min(main.rate(mode, k, s, w) for k in KINDS for s in (0.3, -0.3) for w in (False, True))
        warn = max(main.per_year(mode, k, "high") + main.per_year(mode, k, "low") for k in KINDS)
        crit = max(main.per_year(mode, k, "high critical") + main.per_year(mode, k, "low critical") for k in KINDS)
        first = statistics.mean([h for k in KINDS for h in contamination[(mode, k, None)]])
        second = statistics.mean([h for k in KINDS for h in contamination[(mode, k, 7)]])
        print(f"| {mode} | {worst:.0%} | {warn:.2f} | {crit:.2f} | {second:.0%} / {first:.0%} |")
    print("\nTargets: detection >= 90 %, <= 0.5 false warnings, no false critical, the second as often as the first.")


def evaluate(years: int, seed: int, config: Config) -> None:
    started = time.monotonic()
    score = Scorer(config)
    series = demo_series(years, seed, config.lookback_days)
    last = max(next(iter(series.values())))
    # newest first, as the old design's evaluation drew its anomalies: its figures stay reproducible
    scored = [last - timedelta(days=k) for k in range(365 * years)]
    print(f"{years} year(s) of demo data (seed {seed}), lookback {config.lookback_days} days, "
          f"|z| > {THRESHOLD:g} warns, |z| > {CRITICAL:g} is critical; "
          f"{sum(n.startswith('latency') for n in series)} latency series, "
          f"{sum(n.startswith('tokens') for n in series)} token series\n")
    main = main_case(series, scored, seed, score)
    contamination = contamination_case(series, scored, seed, score)
    level_shift_case(series, scored, seed, score)
    growth_case(series, seed, score)
    holiday_case(series, scored, seed, score)
    heavy_tail_case(series, scored, seed, score)
    short_history_case(series, scored, seed, score)
    targets(main, contamination)
    print(f"\n{score.calls} scores in {time.monotonic() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    evaluate(args.years, args.seed, Config())


if __name__ == "__main__":
    main()

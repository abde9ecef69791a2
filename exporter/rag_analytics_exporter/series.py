"""The daily series the z-score alerts score, from a scored table's validated rows.

One definition for the exporter's builders and for the backtest: which keys keep their own label (top-N by
volume over the rows read, the rest 'other'), each (day, label)'s value, and the scoring of a day. A backtest
therefore replays the very series the live rag_*_zscore gauges are scored on, however fast it walks history.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .anomaly import score_day
from .config import Config
from .score import Score
from .snapshot import frozen_mapping
from .tables import LATENCY_METRICS, TOKEN_USAGE_DAILY

OTHER = "other"

Row = dict[str, Any]  # a validated row, keyed by validate.output_name(column)


def rank_labels(totals: Mapping[str, float], limit: int) -> dict[str, str]:
    """Map each key to itself if it is among the top `limit` by total, else to 'other'."""
    ordered = sorted(totals, key=lambda k: (-totals[k], k))
    keep = set(ordered[:limit])
    return {k: (k if k in keep else OTHER) for k in ordered}


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    used = [(value, w) for value, w in pairs if value is not None and w > 0]
    total = weight = 0.0
    for value, w in used:
        total += value * w
        weight += w
    if weight <= 0:
        return None
    if math.isinf(total):
        # Finite values whose products overflow (1e303 s x 1e6 requests): weigh by shares instead,
        # which cannot exceed the largest value. Only then, so usual values keep their exact bits.
        return sum(value * (w / weight) for value, w in used)
    return total / weight


@dataclass(frozen=True)
class Scored:
    """How a scored table becomes series: the column that names one, what ranks it for the top-N cap, the
    cap, and a (day, label)'s value from its rows (None: no value that day)."""

    key: str
    volume: Callable[[Row], float]
    limit: Callable[[Config], int]
    value: Callable[[list[Row]], float | None]


SCORED = {
    # mean latency, weighted by requests: what the day's mean of merged rows is
    LATENCY_METRICS.name: Scored("component", lambda row: row["request_count"], lambda c: c.max_components,
                                 lambda rows: weighted_mean((m["avg_time_s"], m["request_count"]) for m in rows)),
    TOKEN_USAGE_DAILY.name: Scored("model_name", lambda row: row["total_tokens"], lambda c: c.max_models,
                                   lambda rows: sum(m["total_tokens"] for m in rows)),
}


def labels(rows: Iterable[Row], key: str, volume: Callable[[Row], float], limit: int) -> dict[str, str]:
    """Each key's label by rank_labels of its volume summed over rows."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row[key]] += volume(row)
    return rank_labels(totals, limit)


def daily_series(rows: Iterable[Row], label: Mapping[str, str], scored: Scored) -> dict[str, dict[date, float]]:
    """label -> day -> value, days ascending; rows of one day and label are merged by scored.value."""
    groups: dict[tuple[date, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row["date"], label[row[scored.key]])].append(row)
    series: dict[str, dict[date, float]] = defaultdict(dict)
    for (day, name), members in sorted(groups.items()):
        value = scored.value(members)
        if value is not None:
            series[name][day] = value
    return series


def score_all(series: Mapping[str, Mapping[date, float]], day: date, config: Config) -> Mapping[str, Score]:
    """Each series' score of `day` in config.baseline's mode; series it cannot score are left out."""
    scores: dict[str, Score] = {}
    for key, values in series.items():
        score = score_day(values, day, lookback_days=config.lookback_days, min_days=config.min_baseline_days,
                          min_relative_spread=config.min_relative_spread, baseline=config.baseline)
        if score is not None:
            scores[key] = score
    return frozen_mapping(scores)

"""backtest: the daily z-score alerts replayed on history in every baseline mode (pure parts and the command)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import numpy as np
import psycopg2
import psycopg2.extras
import pytest

from conftest import NOON
from mixin.config import CONFIG
from rag_analytics_exporter import cli
from rag_analytics_exporter.anomaly import BASELINES
from rag_analytics_exporter.backtest import (
    as_text,
    backtest,
    firings,
    longest_run,
    recommend,
    replay,
    summarize,
    windows,
)
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, stream_days
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, latency_row, seed

D = date(2026, 3, 2)  # a Monday


def day(n: int) -> date:
    return D + timedelta(days=n)


def latency_stream(means: list[float], component: str = "llm") -> list[tuple[date, list[tuple]]]:
    """One latency_metrics row a day, in the columns a refresh reads (updated_at left out)."""
    return [(day(i), [latency_row(day(i), component, 1000, 1, mean, 0.4, None)[:-1]]) for i, mean in enumerate(means)]


@pytest.mark.unit
def test_the_thresholds_default_to_the_rules():
    args = cli.build_parser().parse_args(["backtest"])
    assert (args.warning, args.critical) == (CONFIG.zscore_warning, CONFIG.zscore_critical)


@pytest.mark.unit
def test_firings_both_sides_and_strictly_beyond_the_thresholds():
    scores = {"component=llm": {day(0): 3.0, day(1): 3.01, day(2): -6.5, day(3): 6.0},
              "model=gpt-4o": {day(0): -3.2}}
    found = {(f.alert, f.severity, f.series, f.day) for f in firings(scores, 3, 6)}
    assert found == {
        ("RagComponentLatencyAnomaly", "warning", "component=llm", day(1)),
        ("RagComponentLatencyLowAnomaly", "warning", "component=llm", day(2)),
        ("RagComponentLatencyLowAnomaly", "critical", "component=llm", day(2)),
        ("RagComponentLatencyAnomaly", "warning", "component=llm", day(3)),
        ("RagModelTokenUsageLowAnomaly", "warning", "model=gpt-4o", day(0)),
    }


@pytest.mark.unit
def test_longest_run_and_the_summary():
    assert longest_run([]) == (0, None)
    assert longest_run([day(5), day(1), day(2), day(3), day(7), day(8)]) == (3, day(1))
    scores = {"component=llm": {day(i): (7.0 if i in (3, 4) else 0.0) for i in range(61)},
              "component=search": {day(10): -4.0}}
    result = summarize("plain", scores, 61, 3, 6)
    # A critical day notifies once (it inhibits its warning twin): 3 alerts, not 5.
    assert result.alerts == 3
    assert result.alerts_per_month == pytest.approx(3 / 61 * 365.25 / 12, abs=0.01)
    assert dict(result.days_flagged) == {"component=llm": 2, "component=search": 1}
    assert result.longest_run == (2, "component=llm", day(3))


@pytest.mark.unit
def test_recommendation_misses_fewest_agreed_days_then_fewest_alerts():
    agreed = {"component=llm": {day(5): 8.0}}
    noisy = {"component=llm": {day(5): 8.0, day(6): 3.5, day(9): 3.5}}
    results = {"plain": summarize("plain", noisy, 90, 3, 6), "weekday": summarize("weekday", agreed, 90, 3, 6),
               "robust": summarize("robust", {"component=llm": {day(7): 3.5}}, 90, 3, 6)}
    best, reasons = recommend(results, 90)
    assert best == "weekday"
    assert reasons[0].startswith("1 alert days are flagged by at least two modes; weekday misses 0 of them")
    assert any("plain alone flags 2 alert days" in r for r in reasons)
    assert any("robust alone flags 1 alert day " in r for r in reasons)
    assert reasons[-1].startswith("Nothing was changed")
    # On a tie the simplest mode wins, and a short history says so.
    tied = {mode: summarize(mode, agreed, 30, 3, 6) for mode in BASELINES}
    best, reasons = recommend(tied, 30)
    assert best == "plain" and any("Only 30 days were scored" in r for r in reasons)


@pytest.mark.unit
def test_each_day_is_scored_by_the_next_days_refresh_and_the_last_is_not():
    read = list(windows(latency_stream([100.0] * 5), days_read=3))
    assert [today for today, _, _ in read] == [day(i) for i in range(1, 5)]
    _, newest, days = read[-1]
    # The lookback (2 days) + the scored day + today: what a refresh reads (Config.days_read 3, and today).
    assert newest == day(4) and [d for d, _ in days] == [day(1), day(2), day(3), day(4)]


@pytest.mark.unit
def test_scores_from_worker_processes_are_those_of_one_process_in_the_same_order():
    rng = np.random.default_rng(5)
    streams = {"latency_metrics": latency_stream([float(m) for m in rng.normal(100.0, 3.0, 60)]),
               "token_usage_daily": [(day(i), [(day(i), "gpt-4o", 10, 10, 5, 15 + i % 7, 0.1)]) for i in range(60)]}
    one = replay(streams, Config(), jobs=1)
    two = replay(streams, Config(), jobs=2)
    def order(scores):
        return [(mode, series, list(days)) for mode, by_series in scores.items() for series, days in by_series.items()]

    assert two == one and order(two) == order(one)
    assert sum(len(days) for days in one["robust"].values()) > 90  # both tables, most days


@pytest.mark.unit
def test_a_level_shift_is_a_run_of_alerts_in_every_mode_and_the_report_names_it():
    rng = np.random.default_rng(3)
    means = [float(m) for m in rng.normal(100.0, 2.0, 90)]
    means[60:] = [m * 1.5 for m in means[60:]]  # a deploy made llm 50 % slower for good
    config = Config(min_relative_spread=0.01)
    result = backtest({"latency_metrics": latency_stream(means)}, config, 3, 6)
    assert result.first == day(7) and result.last == day(88)  # from min_baseline_days on; the newest day is open
    for mode in BASELINES:
        fired = {f.day for f in result.modes[mode].firings if f.alert == "RagComponentLatencyAnomaly"}
        assert day(60) in fired, mode
        assert result.modes[mode].longest_run[0] >= 2, mode
    text = as_text(result)
    assert "RagComponentLatencyAnomaly" in text and f"{day(60)} component=llm" in text
    assert "Recommendation: anomaly.baseline: " in text


# Seeded and refreshed as of one fixed instant: with the wall clock, a midnight between the seed and the
# refresh made the exporter score another day than the replay's yesterday.
NOW = NOON


@pytest.fixture
def seeded(dsn):
    seed(dsn, scale=DemoScale(days=45, chunks=100), at=NOW)
    return dsn


# A fixed Wednesday: the seeded anomalies fall on a Tuesday. On a weekend day gpt-4o's 4x calls are 2.2 usual
# weekdays, which plain mode scores at about 6 (as the exporter does): the test would depend on the day it runs.
AT = datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)


def test_on_the_demo_data_it_names_the_seeded_anomaly_days(dsn, capsys):
    """seed-demo puts its anomalies (llm latency 2.2x, so total too; gpt-4o calls 4x) on yesterday: every mode names
    that day, critical, and on the clean days before it no mode raises a critical."""
    seed(dsn, scale=DemoScale(days=45, chunks=100), at=AT)
    seeded = dsn
    yesterday = AT.date() - timedelta(days=1)
    assert cli.main(["backtest", "--dsn", seeded, "--format", "json", "--at", AT.isoformat()]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["to"] == yesterday.isoformat()
    for mode in BASELINES:
        critical = {(f["alert"], f["series"], f["day"]) for f in report["modes"][mode]["firings"]
                    if f["severity"] == "critical"}
        assert critical == {("RagComponentLatencyAnomaly", "component=llm", yesterday.isoformat()),
                            ("RagComponentLatencyAnomaly", "component=total", yesterday.isoformat()),
                            ("RagModelTokenUsageAnomaly", "model=gpt-4o", yesterday.isoformat())}, mode
    assert report["recommendation"]["baseline"] in BASELINES
    assert cli.main(["backtest", "--dsn", seeded, "--days", "3", "--at", AT.isoformat()]) == 0
    text = capsys.readouterr().out
    assert f"{yesterday} component=llm" in text and f"{yesterday} model=gpt-4o" in text
    assert f"{yesterday - timedelta(days=2)} to {yesterday} (3 days" in text


@pytest.mark.parametrize("baseline", BASELINES)
def test_yesterdays_scores_are_the_ones_the_exporter_serves(seeded, baseline):
    config = Config(dsn=seeded, baseline=baseline)
    refresher = Refresher(Database(seeded, password=None, application_name="t", connect_timeout=2,
                                   statement_timeout=5, lock_timeout=1), config, clock=NOW.timestamp)
    refresher.refresh()
    sections = refresher.snapshot.sections
    live = {f"component={k}": s.zscore for k, s in sections["latency_metrics"].data.anomalies.items()}
    live |= {f"model={k}": s.zscore for k, s in sections["token_usage_daily"].data.anomalies.items()}
    conn = psycopg2.connect(seeded)
    try:
        streams = {t: stream_days(conn, t, date.min, NOW.date()) for t in ("latency_metrics", "token_usage_daily")}
        scores = replay(streams, config)[baseline]
    finally:
        conn.close()
    yesterday = NOW.date() - timedelta(days=1)
    replayed = {series: days[yesterday] for series, days in scores.items() if yesterday in days}
    assert replayed == pytest.approx(live, rel=1e-12)


def test_bad_options_exit_2(seeded, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["backtest", "--dsn", seeded, "--days", "0"])
    assert exit_info.value.code == 2 and "'0' is not a number of days of at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["backtest", "--dsn", seeded, "--jobs", "0"])
    assert exit_info.value.code == 2 and "'0' is not a whole number of at least 1" in capsys.readouterr().err
    assert cli.main(["backtest", "--dsn", seeded, "--warning", "6", "--critical", "3"]) == 2
    assert "the warning below the critical" in capsys.readouterr().err


def test_every_days_scores_are_those_a_refresh_on_the_next_day_served_with_a_moving_top_n(dsn):
    """Three components under limits.components 2, whose ranks cross mid-history, so that which one is 'other'
    changes; and an SLO period longer than the lookback, so that a refresh ranks over more days than the scores
    read. Every day's replayed score, in every mode, is the one a refresh pinned to the next day served."""
    start, days = date(2026, 3, 2), 50
    rows = []
    for i in range(days):
        d = start + timedelta(days=i)
        wobble = 1 + 0.05 * float(np.sin(i * 1.7))
        for name, requests, mean in (("a", 3000 - 50 * i, 100 * wobble), ("b", 2000, 80 / wobble),
                                     ("c", 500 + 60 * i, 150 * wobble ** 2)):
            rows.append(latency_row(d, name, requests, 1, mean, 0.4, datetime.combine(d, datetime.min.time(),
                                                                                         timezone.utc)))
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(cur, "INSERT INTO latency_metrics VALUES %s", rows)
    base = Config(dsn=dsn, max_components=2, lookback_days=10, min_baseline_days=5, slo_period_days=40)
    try:
        streams = {"latency_metrics": stream_days(conn, "latency_metrics", date.min, start + timedelta(days=days))}
        replayed = replay(streams, base)
    finally:
        conn.close()
    compared = 0
    for mode in BASELINES:
        for i in range(1, days):
            noon = datetime.combine(start + timedelta(days=i), datetime.min.time(), timezone.utc) + timedelta(hours=12)
            refresher = Refresher(Database(dsn, password=None, application_name="t", connect_timeout=2,
                                           statement_timeout=5, lock_timeout=1), replace(base, baseline=mode),
                                  clock=noon.timestamp)
            refresher.refresh()
            data = refresher.snapshot.sections["latency_metrics"].data
            live = {f"component={k}": s.zscore for k, s in data.anomalies.items() if s.zscore is not None}
            scored = {series: by_day[data.scored_day] for series, by_day in replayed[mode].items()
                      if data.scored_day in by_day}
            assert scored == pytest.approx(live, rel=1e-12), (mode, data.scored_day)
            compared += len(live)
    assert compared > 100  # most days are scored

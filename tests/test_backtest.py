"""backtest: the daily z-score alerts replayed on history in every baseline mode (pure parts and the command)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import psycopg2
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
    table_windows,
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
    windows = list(table_windows(latency_stream([100.0] * 5), "latency_metrics", lookback_days=2))
    assert [today for today, _ in windows] == [day(i) for i in range(1, 5)]
    _, read = windows[-1]
    # The lookback (2 days) + the scored day + today: what a refresh reads.
    assert read.newest_date == day(4) and sorted({row[0] for row in read.rows}) == [day(1), day(2), day(3), day(4)]


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
    assert cli.main(["backtest", "--dsn", seeded, "--warning", "6", "--critical", "3"]) == 2
    assert "the warning below the critical" in capsys.readouterr().err

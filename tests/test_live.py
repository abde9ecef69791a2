"""The live writer: its arithmetic without a server, and its writes on a real PostgreSQL."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise

import numpy as np
import pytest

from conftest import execute, query
from rag_analytics_exporter.live import LiveWriter, SimulatedClock, rows
from rag_analytics_exporter.seed import BASE_ERROR_RATIO, COMPONENTS, REQUESTS_PER_DAY, DemoScale, seed
from rag_analytics_exporter.traffic import INCIDENTS, STAGES, Day, Incident, simulate, traffic_shape

TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def added(before: Day, after: Day, component: str) -> tuple[int, int, float]:
    """(requests, errors, time in ms) a component gained between two totals."""
    a, b = before.stages[component], after.stages[component]
    return b.requests - a.requests, b.errors - a.errors, b.time_ms - a.time_ms


def step(incident: Incident | None, seconds: float = 3600, seed_value: int = 1, day: Day | None = None
         ) -> tuple[Day, Day]:
    before = day or Day(TUESDAY_NOON.date())
    after = copy.deepcopy(before)
    simulate(after, np.random.default_rng(seed_value), TUESDAY_NOON, seconds, incident)
    return before, after


def test_a_request_runs_the_stages_in_order_and_the_total_counts_each_failure_once():
    before, after = step(Incident("error-burst", 0))
    arriving = added(before, after, "total")[0]
    assert arriving > 0
    passed = arriving
    for component in STAGES:
        requests, errors, _ = added(before, after, component)
        assert requests == passed, component
        passed -= errors
    assert added(before, after, "total")[1] == sum(added(before, after, c)[1] for c in STAGES)
    assert added(before, after, "total")[2] == pytest.approx(sum(added(before, after, c)[2] for c in STAGES))


def test_the_written_mean_is_the_weighted_mean_of_everything_written_today():
    day = Day(TUESDAY_NOON.date())
    rng = np.random.default_rng(3)
    written = []
    for i in range(5):
        simulate(day, rng, TUESDAY_NOON + timedelta(minutes=5 * i), 300, None)
        written.append({row[1]: row for row in rows(day, TUESDAY_NOON)["latency_metrics"]})
    for first, second in pairwise(written):
        for component in (*STAGES, "total"):
            assert second[component][2] > first[component][2], "requests grow"
            assert second[component][3] >= first[component][3], "errors never fall"
    # mean x requests is exactly the day's whole time, so its growth is the new requests' time
    for component in (*STAGES, "total"):
        row = written[-1][component]
        assert row[4] * row[2] == pytest.approx(day.stages[component].time_ms, rel=1e-12)


def test_a_stage_takes_its_usual_time_and_fails_at_its_usual_ratio():
    before = Day(TUESDAY_NOON.date())
    after = copy.deepcopy(before)
    rng = np.random.default_rng(2)
    for hour in range(24):  # a weekday, five minutes at a time
        for five in range(12):
            simulate(after, rng, TUESDAY_NOON + timedelta(hours=hour, minutes=5 * five), 300, None)
    for component, (mean_ms, _) in COMPONENTS.items():
        requests, errors, spent = added(before, after, component)
        assert spent / requests == pytest.approx(mean_ms, rel=0.03), component
        assert errors / requests < 5 * BASE_ERROR_RATIO[component] + 0.002, component
    assert added(before, after, "total")[0] == pytest.approx(REQUESTS_PER_DAY * 1.0, rel=0.1)


@pytest.mark.parametrize("name", INCIDENTS)
def test_each_incident_does_what_it_says_and_nothing_else(name):
    before, after = step(Incident(name, 0), seconds=6 * 3600)
    _, normal = step(None, seconds=6 * 3600)
    total = added(before, after, "total")[0]
    search = added(before, after, "search")
    llm = added(before, after, "llm")
    negative = after.negative / max(after.negative + after.positive, 1)
    if name == "traffic-stop":
        assert total == 0 and after.positive == 0 and after.models == before.models
        return
    assert total == pytest.approx(added(Day(before.day), normal, "total")[0], rel=0.05)
    assert search[1] / search[0] == pytest.approx({"error-burst": 0.30, "outage": 1.0}.get(name, 0.0008), abs=0.02)
    if name == "outage":
        assert added(before, after, "context")[0] == 0, "nothing passes a component that fails every request"
    else:
        assert llm[2] / llm[0] == pytest.approx(1250 * (3 if name == "latency" else 1), rel=0.05)
        assert negative == pytest.approx(0.60 if name == "feedback" else 0.10, abs=0.04)


def test_an_incident_on_another_component():
    before, after = step(Incident("outage", 0, component="llm"))
    requests, errors, _ = added(before, after, "llm")
    assert requests > 0 and errors == requests
    assert added(before, after, "search")[1] < requests * 0.01
    assert added(before, after, "post")[0] == 0


def test_unknown_incidents_and_components_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown incident 'meteor'"):
        Incident("meteor", 0)
    with pytest.raises(ValueError, match="unknown component 'rerank'"):
        Incident("outage", 0, component="rerank")


def test_traffic_has_a_daily_shape_and_quiet_weekends_without_sudden_drops():
    monday = datetime(2026, 11, 30, tzinfo=timezone.utc)
    minutes = [monday + timedelta(minutes=m) for m in range(0, 14 * 1440, 5)]
    assert traffic_shape(monday.replace(hour=15)) > 2.5 * traffic_shape(monday.replace(hour=3))
    assert traffic_shape(datetime(2026, 12, 5, 15, tzinfo=timezone.utc)) == pytest.approx(
        0.55 * traffic_shape(monday.replace(hour=15)))
    weekday = np.mean([traffic_shape(monday + timedelta(minutes=m)) for m in range(0, 1440, 5)])
    assert weekday == pytest.approx(1.0, abs=0.02)
    # The demo compares traffic with an hour (simulated) earlier; it must never look halved.
    worst = min(traffic_shape(t) / traffic_shape(t - timedelta(hours=1)) for t in minutes)
    assert worst > 0.7


def test_compressed_time_runs_factor_times_faster():
    clock = SimulatedClock(30, real_start=1_000_000.0)
    assert clock.at(1_000_010.0) - clock.at(1_000_000.0) == timedelta(minutes=5)
    assert clock.at(1_000_000.0) == datetime.fromtimestamp(1_000_000.0, timezone.utc)


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def test_the_writer_continues_the_seeded_day_and_compresses_time(dsn):
    at = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    seed(dsn, scale=DemoScale(days=3, chunks=10), at=at, anomalies=False)
    seeded = dict(query(dsn, "SELECT component, request_count FROM latency_metrics WHERE date = %s", (at.date(),)))
    clock = FakeClock(at)
    writer = LiveWriter(dsn, interval=10, compression=30, clock=clock)
    try:
        for _ in range(12):  # two real minutes: one simulated hour
            clock.now += 10
            assert writer.write_once()
    finally:
        writer.stop()
    now = dict(query(dsn, "SELECT component, request_count FROM latency_metrics WHERE date = %s", (at.date(),)))
    grown = now["total"] - seeded["total"]
    expected = REQUESTS_PER_DAY * traffic_shape(at) / 24
    assert grown == pytest.approx(expected, rel=0.15), "an hour of noon traffic"
    updated = query(dsn, "SELECT DISTINCT updated_at FROM token_usage_daily WHERE date = %s", (at.date(),))
    assert updated == [(datetime.fromtimestamp(clock.now, timezone.utc),)]
    assert query(dsn, "SELECT count(*) FROM latency_metrics WHERE date = %s", (at.date(),)) == [(6,)]


def test_one_connection_no_transaction_left_open_and_a_reconnect_after_it_breaks(dsn):
    clock = FakeClock(TUESDAY_NOON)
    messages: list[str] = []
    writer = LiveWriter(dsn, interval=10, clock=clock, say=messages.append)
    application = "rag-analytics-exporter live-writer"
    sessions = ("SELECT pid, state FROM pg_stat_activity WHERE application_name = %s")
    try:
        for _ in range(3):
            clock.now += 10
            assert writer.write_once()
            (backend,) = query(dsn, sessions, (application,))
            assert backend[1] == "idle", "no transaction stays open between writes"
        pid = backend[0]
        before = query(dsn, "SELECT request_count FROM latency_metrics WHERE component = 'total'")[0][0]
        execute(dsn, "SELECT pg_terminate_backend(%s)", (pid,))
        clock.now += 10
        assert not writer.write_once()
        assert "write failed" in messages[-1]
        clock.now += 10
        assert writer.write_once()
        assert messages[-1] == "live writer: connected again"
        (backend,) = query(dsn, sessions, (application,))
        assert backend[0] != pid
        after = query(dsn, "SELECT request_count FROM latency_metrics WHERE component = 'total'")[0][0]
        assert after - before == writer._day.stages["total"].requests - before, "the missed write's traffic is kept"
    finally:
        writer.stop()
    assert not query(dsn, sessions, (application,)), "stop() closes the connection"


def test_an_incident_starting_between_two_writes_applies_from_its_start_on(dsn):
    clock = FakeClock(TUESDAY_NOON)
    writer = LiveWriter(dsn, interval=10, compression=30 * 24, clock=clock)  # 10 s: two simulated hours
    try:
        clock.now += 10
        writer.write_once()
        base = query(dsn, "SELECT request_count, error_count FROM latency_metrics WHERE component = 'search'")[0]
        clock.now += 5
        writer.start_incident("outage")
        clock.now += 5
        writer.write_once()
        now = query(dsn, "SELECT request_count, error_count FROM latency_metrics WHERE component = 'search'")[0]
    finally:
        writer.stop()
    requests, errors = now[0] - base[0], now[1] - base[1]
    assert errors / requests == pytest.approx(0.5, abs=0.08), "half of the interval was in the outage"


def test_midnight_starts_a_new_day_and_finishes_the_old_one(dsn):
    clock = FakeClock(datetime(2026, 12, 1, 23, 59, 55, tzinfo=timezone.utc))
    writer = LiveWriter(dsn, interval=10, compression=60, clock=clock)
    try:
        clock.now += 10
        writer.write_once()
        clock.now += 10
        writer.write_once()
        clock.now += 10
        writer.write_once()
    finally:
        writer.stop()
    by_day = dict(query(dsn, "SELECT date, request_count FROM latency_metrics WHERE component = 'total'"))
    assert set(by_day) == {date(2026, 12, 1), date(2026, 12, 2)}
    # 5 s of the first write before midnight (300 simulated s), 25 s after (1500 s) at the same rate
    assert by_day[date(2026, 12, 2)] > by_day[date(2026, 12, 1)]


def test_clean_traffic_fails_well_inside_the_error_budget_on_every_component_and_the_total():
    """Else the slow burn-rate ticket (1x the budget over 3 days) would open on clean demo days."""
    from mixin.config import CONFIG

    assert max(BASE_ERROR_RATIO.values()) < CONFIG.error_budget / 2
    assert sum(BASE_ERROR_RATIO.values()) < CONFIG.error_budget * 0.6, "the total holds every stage's errors"

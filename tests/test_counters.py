"""counters.advance by hand-computed cases: growth, corrections, days told by date, sticky labels, new series."""

from __future__ import annotations

from datetime import date

import pytest

from rag_analytics_exporter.counters import Counters, Running, advance

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 10)
YESTERDAY = date(2026, 3, 9)
LATENCY, FEEDBACK = "latency_metrics", "feedback_daily"
REQUESTS = ("rag_component_requests_total", ("llm",))
ERRORS = ("rag_component_errors_total", ("llm",))


def llm(day: date, requests: float, errors: float = 0.0, label: str = "llm", key: str = "llm",
        stage: float | None = None) -> Running:
    values = {"request_count": requests, "error_count": errors}
    if stage is not None:
        values["stage_seconds"] = stage
    return Running(day, key, (label,), values)


def run(*reads: dict[str, list[Running]], today: date = TODAY) -> tuple[Counters, list]:
    state, found = Counters(), []
    for at, observed in enumerate(reads):
        state, corrections = advance(state, observed, today, 1000.0 + at)
        found += corrections
    return state, found


def test_the_first_read_is_the_baseline_at_zero_with_a_created_timestamp():
    state, _ = run({LATENCY: [llm(TODAY, 500, 3)]})
    assert state.values[REQUESTS] == 0 and state.values[ERRORS] == 0
    assert state.created[REQUESTS] == 1000.0


def test_each_write_adds_its_increase():
    state, found = run({LATENCY: [llm(TODAY, 500, 3)]}, {LATENCY: [llm(TODAY, 620, 5)]},
                       {LATENCY: [llm(TODAY, 700, 5)]})
    assert state.values[REQUESTS] == 200 and state.values[ERRORS] == 2 and not found


def test_a_decrease_holds_the_counter_is_counted_and_the_next_write_counts_from_it():
    state, found = run({LATENCY: [llm(TODAY, 1000, 50)]}, {LATENCY: [llm(TODAY, 980, 49)]},
                       {LATENCY: [llm(TODAY, 1010, 49)]})
    assert state.values[REQUESTS] == 30  # -20 held, then +30 from 980: never the day replayed
    assert state.values[ERRORS] == 0
    assert state.corrections[(LATENCY, "rag_component_requests_total")] == 20
    assert state.corrections[(LATENCY, "rag_component_errors_total")] == 1
    assert [(c.counter, c.amount) for c in found] == [("rag_component_requests_total", 20),
                                                       ("rag_component_errors_total", 1)]


def test_an_error_counted_one_write_late_loses_nothing():
    # requests - errors dips when an error lands a write after its request; each total still only grows
    state, found = run({LATENCY: [llm(TODAY, 100, 0)]}, {LATENCY: [llm(TODAY, 110, 0)]},
                       {LATENCY: [llm(TODAY, 110, 10)]})
    assert (state.values[REQUESTS], state.values[ERRORS], found) == (10, 10, [])


def test_a_new_day_is_told_by_its_date_and_yesterdays_late_write_still_counts():
    state, _ = run({LATENCY: [llm(YESTERDAY, 9000, 30)]},
                   # after midnight: yesterday's last write and today's first, in one run of the ETL
                   {LATENCY: [llm(YESTERDAY, 9040, 31), llm(TODAY, 50, 2)]})
    assert state.values[REQUESTS] == 40 + 50 and state.values[ERRORS] == 1 + 2


def test_rows_older_than_yesterday_are_not_counted_and_not_kept():
    old = date(2026, 3, 8)
    state, _ = run({LATENCY: [llm(TODAY, 1)]}, {LATENCY: [llm(old, 500), llm(TODAY, 2)]})
    assert state.values[REQUESTS] == 1
    assert all(day >= YESTERDAY for _, day, _ in state.seen)


def test_a_rows_label_is_fixed_for_the_day():
    other = ("rag_component_requests_total", ("other",))
    state, _ = run({LATENCY: [llm(TODAY, 100, label="other", key="rerank")]},
                   # rerank climbs into the top N mid-day: it stays in other until midnight
                   {LATENCY: [llm(TODAY, 160, label="rerank", key="rerank")]},
                   {LATENCY: [llm(TODAY, 170, label="rerank", key="rerank")]})
    assert state.values[other] == 70
    assert ("rag_component_requests_total", ("rerank",)) not in state.values
    tomorrow = date(2026, 3, 11)
    state, _ = advance(state, {LATENCY: [llm(tomorrow, 9, label="rerank", key="rerank")]}, tomorrow, 2000.0)
    assert state.values[other] == 70, "a new day takes the new label"
    assert state.values[("rag_component_requests_total", ("rerank",))] == 0, "published at 0 first"


def test_a_series_that_appears_later_is_served_at_zero_then_takes_its_amount():
    search = ("rag_component_requests_total", ("search",))
    state, _ = run({LATENCY: [llm(TODAY, 100)]},
                   {LATENCY: [llm(TODAY, 100), llm(TODAY, 40, label="search", key="search")]})
    assert state.values[search] == 0 and state.created[search] == 1001.0
    state, _ = advance(state, {LATENCY: [llm(TODAY, 100), llm(TODAY, 45, label="search", key="search")]}, TODAY,
                       1002.0)
    assert state.values[search] == 45


def test_each_table_takes_its_own_baseline():
    positive = ("rag_feedback_total", ("positive",))
    first, _ = run({LATENCY: [llm(TODAY, 100)]})
    # feedback_daily failed on the first read: its first successful read is its baseline, not an increase
    state, _ = advance(first, {LATENCY: [llm(TODAY, 120)],
                               FEEDBACK: [Running(TODAY, "", (), {"positive_count": 700, "negative_count": 80})]},
                       TODAY, 1001.0)
    assert state.values[positive] == 0 and state.values[REQUESTS] == 20


def test_stage_time_from_whole_millisecond_means_never_goes_back_nor_counts_an_oscillation_twice():
    stage = ("rag_component_stage_seconds_total", ("llm",))
    # 1,000 requests at 21 ms, 1,010 at 20 ms (the rounded mean stepped down: 20.2 s < 21 s), 1,020 at 21 ms
    # (back up), 1,030 at 21 ms. Counted from the last value, the step back up would add 1.22 s, not 0.42 s.
    state, found = run({LATENCY: [llm(TODAY, 1000, stage=21.0)]}, {LATENCY: [llm(TODAY, 1010, stage=20.2)]},
                       {LATENCY: [llm(TODAY, 1020, stage=21.42)]}, {LATENCY: [llm(TODAY, 1030, stage=21.63)]})
    assert state.values[stage] == pytest.approx(21.63 - 21.0)
    assert state.corrections[(LATENCY, "rag_component_stage_seconds_total")] == pytest.approx(0.8)
    assert len(found) == 1


MIDNIGHT = 1773100800.0  # 2026-03-10 00:00 UTC, TODAY's start


def test_a_rerun_of_a_closed_day_hours_after_midnight_is_not_traffic_of_now():
    state, _ = advance(Counters(), {LATENCY: [llm(YESTERDAY, 100_000, 100), llm(TODAY, 40_000, 40)]}, TODAY,
                       MIDNIGHT + 10 * 3600)
    state, _ = advance(state, {LATENCY: [llm(YESTERDAY, 100_000, 2_000), llm(TODAY, 41_000, 41)]}, TODAY,
                       MIDNIGHT + 10 * 3600 + 60)
    assert (state.values[REQUESTS], state.values[ERRORS]) == (1_000, 1)
    # ... while the ETL's last run of yesterday, just after midnight, counts
    state, _ = advance(Counters(), {LATENCY: [llm(YESTERDAY, 100_000, 100)]}, TODAY, MIDNIGHT + 60)
    state, _ = advance(state, {LATENCY: [llm(YESTERDAY, 100_400, 101)]}, TODAY, MIDNIGHT + 120)
    assert (state.values[REQUESTS], state.values[ERRORS]) == (400, 1)


def test_a_mean_that_was_null_is_a_baseline_when_it_appears_not_the_days_time():
    stage = ("rag_component_stage_seconds_total", ("llm",))
    state, _ = run({LATENCY: [llm(TODAY, 200)]}, {LATENCY: [llm(TODAY, 210, stage=42.0)]},
                   {LATENCY: [llm(TODAY, 220, stage=44.0)]})
    assert state.values[stage] == pytest.approx(2.0) and state.values[REQUESTS] == 20


def test_a_de_duplication_lowers_the_stage_times_highest_value_with_its_requests():
    stage = ("rag_component_stage_seconds_total", ("llm",))
    # 1,000 requests of 0.1 s, de-duplicated to 980 (and 98 s), then 990: the 10 new requests' 1 s counts
    state, _ = run({LATENCY: [llm(TODAY, 1000, stage=100.0)]}, {LATENCY: [llm(TODAY, 980, stage=98.0)]},
                   {LATENCY: [llm(TODAY, 990, stage=99.0)]})
    assert state.values[stage] == pytest.approx(1.0) and state.values[REQUESTS] == 10


def test_two_new_rows_of_one_new_series_are_both_held_back_once():
    other = ("rag_component_requests_total", ("other",))
    state, _ = run({LATENCY: [llm(TODAY, 1)]},
                   {LATENCY: [llm(TODAY, 1), llm(TODAY, 300, label="other", key="a"),
                              llm(TODAY, 200, label="other", key="b")]})
    assert state.values[other] == 0
    state, _ = advance(state, {}, TODAY, 1002.0)
    assert state.values[other] == 500


def test_a_value_that_overflows_to_infinity_is_skipped():
    stage = ("rag_component_stage_seconds_total", ("llm",))
    state, _ = run({LATENCY: [llm(TODAY, 10, stage=1.0)]}, {LATENCY: [llm(TODAY, 20, stage=float("inf"))]},
                   {LATENCY: [llm(TODAY, 30, stage=3.0)]})
    assert state.values[stage] == 2.0


def test_a_clock_stepping_back_over_midnight_reopens_no_day():
    state, _ = run({LATENCY: [llm(YESTERDAY, 9000), llm(TODAY, 100)]}, {LATENCY: [llm(TODAY, 110)]})
    before = date(2026, 3, 8)
    state, _ = advance(state, {LATENCY: [llm(before, 90_000), llm(YESTERDAY, 9000), llm(TODAY, 120)]}, YESTERDAY,
                       1003.0)
    assert state.values[REQUESTS] == 20


def test_a_series_that_no_row_of_today_or_yesterday_feeds_is_dropped():
    state, _ = run({LATENCY: [llm(YESTERDAY, 10, label="gone", key="gone"), llm(YESTERDAY, 10)]})
    assert ("rag_component_requests_total", ("gone",)) in state.values
    state, _ = advance(state, {LATENCY: [llm(TODAY, 5)]}, date(2026, 3, 11), 2000.0)
    assert ("rag_component_requests_total", ("gone",)) not in state.values


def test_rows_of_one_day_and_key_reach_the_counters_summed():
    from rag_analytics_exporter.builders import build_latency
    from rag_analytics_exporter.config import Config
    from rag_analytics_exporter.db import TableRead
    from rag_analytics_exporter.tables import LATENCY_METRICS

    # a view without the primary key gives llm twice: counted once per refresh as one row, it cannot churn
    rows = ((TODAY, "llm", 100, 1, 10.0, None, None, None, None), (TODAY, "llm", 50, 0, 20.0, None, None, None, None))
    read = TableRead(LATENCY_METRICS.name, LATENCY_METRICS.read_columns, rows, TODAY, None)
    [running] = build_latency(read, 0.0, TODAY, Config(dsn="")).running
    assert running.values == {"request_count": 150, "error_count": 1, "stage_seconds": pytest.approx(2.0)}


def test_a_table_no_counter_reads_is_passed_over():
    state, _ = run({LATENCY: [llm(TODAY, 1)], "feedback_tags_daily": [Running(TODAY, "x", ("x",), {"n": 1.0})]})
    assert state.baselined == {LATENCY} and state.values[REQUESTS] == 0

"""Real ETL behaviour replayed through the real exporter and the committed rules (bench/replay.py).

Each case writes an ETL's timeline into a real PostgreSQL, refreshes the real exporter after every
minute on a simulated clock, turns its scrapes into promtool series and runs the committed rule files:
an outage must page within its time and hold until it ends, and nothing else may page or ticket.
These are the cases that fit in a day of replay; bench/live_eval.py runs every case, those that need
a week of scrapes (a late first write, a replaced pod) included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import replay  # the bench's harness, the same code that gives docs/live.md's figures

from conftest import scratch_database

FAST = [case.name for case in replay.cases() if case.live_minutes <= 12 * replay.HOUR]


def test_the_fast_set_holds_every_case_that_needs_no_week_of_scrapes():
    assert len(FAST) == len(replay.cases()) - 3, FAST  # the clean control, the late first write, the pod


@pytest.mark.parametrize("name", FAST)
def test_an_etl_case_replayed_through_the_exporter_pages_as_expected(name, pg_server, promtool, tmp_path):
    case = replay.by_name(name)
    with scratch_database(pg_server) as dsn:
        result = replay.replay(case, dsn, promtool, workdir=tmp_path)
    print(f"{name}: {result.seconds:.0f} s; fired: " + ", ".join(
        f"{alert} {severity} from {minutes[0]} ({len(minutes)} min)" for (alert, severity), minutes in
        sorted(result.firing.items())))
    assert not result.problems(), result.problems()
    for key in case.expect:
        assert result.first(key) is not None

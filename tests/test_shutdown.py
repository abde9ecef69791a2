"""Graceful stop under races: every connection the kernel accepted before the stop is answered whole."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from conftest import scratch_database
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, seed
from rag_analytics_exporter.server import Exposition, MetricsServer, serve_in_thread
from stack import read_response

ROUNDS = 100
CONNECTIONS_PER_ROUND = 8
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n"


@pytest.fixture(scope="module")
def exposition(pg_server) -> Exposition:
    """The demo data's exposition (about 30 KiB), so a response takes more than one write."""
    with scratch_database(pg_server) as dsn:
        init_db(dsn)
        seed(dsn, scale=DemoScale(days=35, chunks=500))
        database = Database(dsn, password=None, application_name="t", connect_timeout=2, statement_timeout=5,
                            lock_timeout=1)
        snapshot = Refresher(database, Config(dsn=dsn)).refresh()
        database.close()
    return Exposition(lambda: snapshot)


def test_stop_serves_every_accepted_connection_whole(exposition, caplog):
    """Each round: clients connect and send, then stop() runs at once, as SIGTERM would.

    Whatever connected before stop() began is answered whole, whether it was still in the listen
    backlog, accepted but unread, or being answered, and stop() says everything finished.
    """
    caplog.set_level(logging.DEBUG, logger="rag_analytics_exporter.server")
    expected = exposition.body(gzipped=False)
    expected_rag = expected[: expected.index(b"# HELP process_")]
    stop_times = []
    for _ in range(ROUNDS):
        server = MetricsServer(("127.0.0.1", 0), exposition)
        serve_in_thread(server)
        port = server.server_address[1]
        clients = []
        for _ in range(CONNECTIONS_PER_ROUND):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            client.sendall(REQUEST)
            clients.append(client)
        result: list[bool] = []
        stopper = threading.Thread(target=lambda s, r: r.append(s.stop(4.0)), args=(server, result))
        started = time.monotonic()
        stopper.start()
        for client in clients:
            head, body = read_response(client)
            assert head.startswith(b"HTTP/1.0 200"), head
            assert body.startswith(expected_rag), "the response is the whole exposition"
            client.close()
        stopper.join()
        stop_times.append(time.monotonic() - started)
        assert result == [True], "stop() saw every connection finish"
    from_backlog = [r for r in caplog.records if "listen backlog" in r.getMessage()]
    print(f"{ROUNDS} rounds; stop() p50 {sorted(stop_times)[ROUNDS // 2] * 1000:.0f} ms, "
          f"max {max(stop_times) * 1000:.0f} ms; {len(from_backlog)} rounds served connections from the backlog")
    assert from_backlog, "no round left a connection in the listen backlog: the race was never exercised"

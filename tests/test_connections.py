"""Open connections are bounded: idle keep-alive clients cannot take every file descriptor (issue 29 item 7)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from rag_analytics_exporter.app import FD_RESERVE, connection_limit
from stack import read_response, wait_for

# The exporter's open files limit in the test: soft below hard, so that raising it shows, and small,
# so that a few hundred clients reach it. With the default web.max_connections (512) the server keeps
# at most HARD - FD_RESERVE = 128 connections.
SOFT, HARD = 128, 256
CLIENTS = 300
# A scrape that takes longer than this failed: a tight Prometheus scrape timeout (docs/testing.md).
SCRAPE_BOUND_SECONDS = 2.0
REQUEST = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.unit
@pytest.mark.parametrize(("configured", "fd_limit", "served"), [
    (512, 1024, 512), (512, 256, 256 - FD_RESERVE), (512, 1_048_576, 512), (100, 100, 50), (10, 256, 10)])
def test_the_connection_limit_leaves_room_for_other_descriptors(configured, fd_limit, served):
    assert connection_limit(configured, fd_limit) == served


def samples(port: int) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_BOUND_SECONDS).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=5).close()
    except OSError:
        return False
    return True


def idle_client(port: int) -> socket.socket | None:
    """A client that made one keep-alive request and now sits idle; None when it got no answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=SCRAPE_BOUND_SECONDS)
    try:
        sock.sendall(REQUEST)
        head, _ = read_response(sock)
    except OSError:
        sock.close()
        return None
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
    return sock


# Before: 300 idle clients took every descriptor of a process limited to 128 open files; accept()
# failed with EMFILE, and a scrape waited until the idle timeout (75 s) freed one.
def test_idle_clients_beyond_the_limit_close_the_oldest_idle_and_scrapes_still_answer(dsn, tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "rag_analytics_exporter.cli", "serve", f"--web.listen-address=127.0.0.1:{port}"],
        env=os.environ | {"RAG_EXPORTER_DSN": dsn}, stdout=log.open("w"), stderr=subprocess.STDOUT,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD)))
    clients: list[socket.socket] = []
    try:
        wait_for("serving", lambda: answers(port), 30)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        assert f"Max open files            {HARD}                  {HARD}" in limits, limits
        for _ in range(CLIENTS):
            if (client := idle_client(port)) is None:
                break
            clients.append(client)
        assert len(clients) == CLIENTS, f"client {len(clients) + 1} got no answer:\n{log.read_text()[-3000:]}"
        started = time.monotonic()
        metrics = samples(port)
        took = time.monotonic() - started
        print(f"scrape beside {CLIENTS} idle clients: {took * 1000:.0f} ms (bound {SCRAPE_BOUND_SECONDS:g} s)")
        limit = HARD - FD_RESERVE
        assert metrics["rag_exporter_http_max_connections", ()] == limit
        assert metrics["rag_exporter_http_open_connections", ()] <= limit
        # Every client beyond the limit closed the longest idle one: the scrape's own connection one more.
        evicted = metrics["rag_exporter_http_evicted_connections_total", (("state", "idle"),)]
        assert CLIENTS - limit <= evicted <= CLIENTS, evicted
        assert clients[0].recv(1) == b"", "the oldest idle client was closed"
        clients[-1].sendall(REQUEST)  # the newest is still served on its kept connection
        assert read_response(clients[-1])[0].startswith(b"HTTP/1.1 200")
    finally:
        for client in clients:
            client.close()
        process.terminate()
        assert process.wait(timeout=10) == 0, log.read_text()[-3000:]

"""The HTTP layer under connection floods: cut-short requests, client disconnects, max_requests, logs."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from conftest import REPO, free_port, query
from rag_analytics_exporter.seed import DemoScale, seed
from stack import read_response, wait_for

sys.path.insert(0, str(REPO / "bench"))
from flood import open_stalled  # the benchmark's own flood, smaller

FLOOD = 500
# A failed scrape is one that takes longer than this: a tight Prometheus scrape timeout.
SCRAPE_TIMEOUT = 2.0
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
def serve(dsn, tmp_path):
    """Start `serve` as a process on demo data, with extra environment; yields (port, log file)."""
    seed(dsn, scale=DemoScale(days=35, chunks=500))
    started = []

    def start(env: dict[str, str] | None = None, web: dict | None = None) -> tuple[int, Path]:
        port, log = free_port(), tmp_path / f"serve-{len(started)}.log"
        args = [sys.executable, "-m", "rag_analytics_exporter.cli", "serve", f"--web.listen-address=127.0.0.1:{port}"]
        if web is not None:
            (tmp_path / "web.yml").write_text(yaml.safe_dump(web))
            args.append(f"--web.config.file={tmp_path / 'web.yml'}")
        process = subprocess.Popen(args, env=os.environ | {"RAG_EXPORTER_DSN": dsn} | (env or {}),
                                   stderr=log.open("w"))
        started.append(process)
        wait_for("serving", lambda: answers(port), 30)
        return port, log

    yield start
    for process in started:
        process.terminate()
        assert process.wait(timeout=10) == 0


def answers(port: int) -> bool:
    """Whether the server answers HTTP at all (401 included)."""
    try:
        # Behind basic auth even this probe costs a bcrypt, 3 s and more with both cores busy. A probe
        # given up on would go on holding a request slot after the server counts as up, and take
        # max_requests=1 from the test that follows.
        urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=20).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def scrape(port: int, headers: dict[str, str] | None = None) -> float | None:
    """Seconds one scrape took, or None if it failed."""
    started = time.monotonic()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
        with urllib.request.urlopen(request, timeout=SCRAPE_TIMEOUT) as response:
            response.read()
    except OSError:
        return None
    return time.monotonic() - started


def unread_bytes(port: int, peer_port: int) -> int | None:
    """Bytes the kernel holds that the server has not read yet, on its end of one connection (/proc/net/tcp)."""
    local, remote = f"0100007F:{port:04X}", f"0100007F:{peer_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16)
    return None


def metric(port: int, line_start: str, headers: dict[str, str] | None = None) -> float:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers or {})
    # Long enough for a bcrypt of cost 13 under load (3 s and more): a bound on a hang, not on speed.
    with urllib.request.urlopen(request, timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
    raise AssertionError(f"{line_start} not served")


def test_a_flood_of_stalled_connections_fails_no_scrape_and_writes_no_log(serve):
    port, log = serve()
    before = len(log.read_text().splitlines())
    held = open_stalled(port, FLOOD)
    try:
        assert len(held) == FLOOD
        during = [scrape(port) for _ in range(5)]
    finally:
        for sock in held:
            sock.close()
    after = [scrape(port) for _ in range(5)]
    print(f"{FLOOD} stalled connections: scrapes during {[round(s * 1000) for s in during if s]} ms, "
          f"after {[round(s * 1000) for s in after if s]} ms")
    assert None not in during + after, "a scrape failed during or after the flood"
    assert len(log.read_text().splitlines()) - before <= 5, log.read_text()[-3000:]
    # Each closed connection had sent a request cut short: counted, and nothing rendered for it.
    wait_for("the disconnects counted", lambda: metric(port, "rag_exporter_http_client_disconnects_total") >= FLOOD,
             10)


def test_a_request_cut_short_by_eof_gets_no_response(serve):
    port, _ = serve()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(HALF_REQUEST)
        sock.shutdown(socket.SHUT_WR)  # EOF where the blank line should be
        assert sock.recv(100) == b"", "nothing is rendered for a request that never finished"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(HALF_REQUEST + b"\r\n")  # the same request, finished
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"rag_exporter_up" in body


def test_requests_over_max_requests_get_503_at_once(serve):
    """max_requests 1: while one request waits for bcrypt (cost 13: 0.95 s here), another gets 503 at once."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=13)).decode()
    port, _ = serve({"RAG_EXPORTER_WEB_MAX_REQUESTS": "1"}, web={"basic_auth_users": {"prometheus": hashed}})
    wrong = "Basic " + base64.b64encode(b"prometheus:wrong").decode()
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\n\r\n".encode())
    # The server takes the slot in the same callback that reads the head, so once the kernel holds none
    # of it unread the slot is taken. Waiting for that, not for a fixed time: with both cores busy the
    # exporter was once not scheduled within 0.1 s, and the second request took the slot first.
    wait_for("the slow request's head read", lambda: unread_bytes(port, slow.getsockname()[1]) == 0, 5, 0.005)
    time.sleep(0.1)  # slack for the rest of that callback; bcrypt takes about 0.85 s more
    with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
        second.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        head, _ = read_response(second)
        waited = time.monotonic() - started
    assert head.startswith(b"HTTP/1.1 503"), head
    head, _ = read_response(slow)
    slow.close()
    assert head.startswith(b"HTTP/1.1 401"), head
    print(f"503 after {waited * 1000:.0f} ms, while the first request was still in bcrypt")
    right = "Basic " + base64.b64encode(b"prometheus:right").decode()
    assert metric(port, 'rag_exporter_http_refused_total{reason="max_requests"}', {"Authorization": right}) == 1


def test_the_exporter_holds_its_database_connection_through_a_flood(serve, dsn):
    """A flood is the HTTP layer's business: the refreshes go on, on their one connection."""
    port, _ = serve({"RAG_EXPORTER_REFRESH_INTERVAL": "1s", "RAG_EXPORTER_DATABASE_STATEMENT_TIMEOUT": "0.8s"})
    refreshes = metric(port, "rag_exporter_refreshes_total")
    held = open_stalled(port, FLOOD)
    try:
        wait_for("a refresh during the flood", lambda: metric(port, "rag_exporter_refreshes_total") > refreshes, 10)
    finally:
        for sock in held:
            sock.close()
    sessions = query(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rag-analytics-exporter'")
    assert sessions[0][0] == 1


def test_a_failing_answer_is_one_warning_a_minute_not_one_per_request(caplog):
    """A bug in rendering must not turn a burst of requests into a burst of tracebacks."""
    import logging

    from rag_analytics_exporter.config import Config
    from rag_analytics_exporter.exposition import Exposition
    from rag_analytics_exporter.http.server import serve_in_thread
    from rag_analytics_exporter.routes import metrics_server
    from rag_analytics_exporter.snapshot import empty_snapshot

    class Broken(Exposition):
        def body(self, gzipped: bool) -> bytes:
            raise RuntimeError("render failed")

    snapshot = empty_snapshot(Config())
    server = metrics_server(("127.0.0.1", 0), Broken(lambda: snapshot))
    serve_in_thread(server)
    caplog.set_level(logging.WARNING)
    try:
        for _ in range(50):
            assert scrape(server.server_address[1]) is None  # the connection is dropped at once
    finally:
        assert server.stop(2.0)
    warnings = [r for r in caplog.records if "error answering" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is not None

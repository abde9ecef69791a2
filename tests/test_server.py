"""The HTTP server over a real database: routes, methods, gzip, promtool lint, ugly label values."""

from __future__ import annotations

import gzip
import subprocess
import time
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import NOON, execute
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.seed import DemoScale, seed
from rag_analytics_exporter.validate import clean_label

# The exporters here refresh and answer scrapes at NOON, and the rows are dated from it: with the wall clock a
# midnight between the insert and the refresh would leave today's families out.
TODAY = NOON.date()


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def exporter(dsn):
    config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=30)
    running = start_exporter(config, password=None, clock=NOON.timestamp)
    deadline = time.monotonic() + 10
    while running.refresher.snapshot.health.refreshes == 0:
        assert time.monotonic() < deadline, "first refresh did not finish"
        time.sleep(0.02)
    yield running
    running.stop()


def url(running, path: str) -> str:
    return f"http://127.0.0.1:{running.port}{path}"


def rag_lines(body: bytes) -> list[str]:
    return [line for line in body.decode().splitlines() if "rag_" in line]


def test_routes_and_methods(exporter):
    status, headers, body = fetch(url(exporter, "/metrics"))
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"rag_exporter_up 1.0" in body
    assert b"process_resident_memory_bytes" in body

    status, headers, body = fetch(url(exporter, "/metrics"), method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000

    status, _, body = fetch(url(exporter, "/"))
    assert status == 200 and b'href="metrics"' in body
    assert fetch(url(exporter, "/-/healthy"))[0] == 200
    assert fetch(url(exporter, "/metrics/extra"))[0] == 404
    assert fetch(url(exporter, "/nope"))[0] == 404
    status, headers, _ = fetch(url(exporter, "/metrics"), method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert fetch(url(exporter, "/metrics"), method="DELETE")[0] == 405


def test_gzip_body_is_the_same_exposition(exporter):
    _, _, plain = fetch(url(exporter, "/metrics"))
    status, headers, packed = fetch(url(exporter, "/metrics"), headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert rag_lines(gzip.decompress(packed)) == rag_lines(plain)


def test_demo_metrics_pass_promtool_lint(dsn, promtool):
    seed(dsn, scale=DemoScale(days=60, chunks=3000), at=NOON)
    config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0)
    running = start_exporter(config, password=None, clock=NOON.timestamp)
    try:
        deadline = time.monotonic() + 10
        while not running.refresher.snapshot.health.up:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        _, _, body = fetch(url(running, "/metrics"))
    finally:
        running.stop()
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == b"" and result.stderr == b""
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"rag_component_latency_seconds", "rag_model_tokens", "rag_citation_responses", "rag_feedback_tag",
            "rag_followups", "rag_chunk_relevance_chunks", "rag_component_latency_zscore",
            "rag_model_tokens_zscore"} <= families


UGLY = ['say "hi"', "back\\slash", "new\nline", "tab\tand\rcarriage", "emoji 🙂🔥", "x" * 300, "ctrl\x01\x1b[31m\x7f",
        "ünïcødé ✓", "{braces}=,", "other"]


def test_ugly_label_values_survive_to_a_parseable_exposition(dsn, exporter, promtool):
    for i, tag in enumerate(UGLY):
        execute(dsn, "INSERT INTO feedback_tags_daily VALUES (%s, %s, %s, 1, %s)", (TODAY, tag, i + 1, NOON))
    exporter.refresher.refresh()
    _, _, body = fetch(url(exporter, "/metrics"))
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    parsed = {s.labels["tag"]: s.value for f in text_string_to_metric_families(body.decode())
              if f.name == "rag_feedback_tag" for s in f.samples if s.labels["sentiment"] == "positive"}
    assert set(parsed) == {clean_label(tag) for tag in UGLY}
    assert parsed['say "hi"'] == 1
    assert parsed[clean_label("new\nline")] == parsed["new\ufffdline"] == 3
    assert parsed["emoji 🙂🔥"] == 5
    assert len(clean_label("x" * 300)) == 128 and parsed[clean_label("x" * 300)] == 6


def test_metrics_answer_from_memory_while_the_database_is_locked(dsn, exporter):
    """A scrape reads the snapshot; a refresh stuck behind a lock does not delay it."""
    import psycopg2

    locker = psycopg2.connect(dsn)
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE latency_metrics IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            status, _, _ = fetch(url(exporter, "/metrics"))
            assert status == 200
            assert time.monotonic() - started < 1.0
    finally:
        locker.rollback()
        locker.close()


def test_stale_data_is_withheld_and_health_stays(dsn):
    execute(dsn, "INSERT INTO feedback_daily VALUES (%s, 8, 2, %s)", (TODAY, NOON))
    clock = [NOON.timestamp()]
    from rag_analytics_exporter.collectors import build_registry
    from rag_analytics_exporter.db import Database
    from rag_analytics_exporter.refresh import Refresher

    config = Config(dsn=dsn, refresh_interval=60, max_data_age=180)
    refresher = Refresher(Database(dsn, password=None, application_name="t", connect_timeout=2,
                                   statement_timeout=5, lock_timeout=1), config, clock=lambda: clock[0])
    refresher.refresh()
    registry = build_registry(lambda: refresher.snapshot, clock=lambda: clock[0])
    assert registry.get_sample_value("rag_feedback", {"sentiment": "positive"}) == 8
    clock[0] += timedelta(seconds=181).total_seconds()
    assert registry.get_sample_value("rag_feedback", {"sentiment": "positive"}) is None
    assert registry.get_sample_value("rag_exporter_table_data_withheld", {"table": "feedback_daily"}) == 1
    assert registry.get_sample_value("rag_exporter_up") == 1
    assert registry.get_sample_value("rag_table_updated_timestamp_seconds", {"table": "feedback_daily"}) > 0


def test_a_new_snapshot_is_rendered_by_the_refresh_not_by_a_scrape(dsn):
    from rag_analytics_exporter.db import Database
    from rag_analytics_exporter.exposition import Exposition
    from rag_analytics_exporter.refresh import Refresher

    refresher = Refresher(Database(dsn, password=None, application_name="t", connect_timeout=2,
                                   statement_timeout=5, lock_timeout=1), Config(dsn=dsn))
    exposition = Exposition(lambda: refresher.snapshot)
    refresher.on_publish(exposition.warm)
    for _ in range(2):
        refresher.refresh()
        assert exposition._cache[0] is refresher.snapshot, "rendered in the refresh thread, before any scrape"


@pytest.mark.unit
def test_listening_on_all_ipv6_addresses_serves_ipv4_too():
    """web.listen_address [::]:PORT takes both families, as http.server did on Linux."""
    from rag_analytics_exporter.exposition import Exposition
    from rag_analytics_exporter.http.server import serve_in_thread
    from rag_analytics_exporter.routes import metrics_server
    from rag_analytics_exporter.snapshot import empty_snapshot

    snapshot = empty_snapshot(Config())
    server = metrics_server(("::", 0), Exposition(lambda: snapshot))
    serve_in_thread(server)
    try:
        port = server.server_address[1]
        for host in ("127.0.0.1", "[::1]"):
            assert fetch(f"http://{host}:{port}/-/healthy")[0] == 200, host
    finally:
        assert server.stop(2.0)

"""The README's demo command, run for real: embedded PostgreSQL, exporter, backfilled Prometheus, Alertmanager."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from conftest import free_port, require_binary
from stack import http_json, wait_for

pytestmark = pytest.mark.e2e


def prometheus(expr: str) -> list:
    try:
        body = http_json(f"http://127.0.0.1:9890/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    except OSError:
        return []
    return body["data"]["result"]


def test_demo_runs_the_stack_with_history_and_stops_cleanly(tmp_path):
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        require_binary(binary)
    port = free_port()
    log = tmp_path / "demo.log"
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir",
                                str(tmp_path / "demo"), "--port", str(port)], stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        wait_for("the demo to be ready", lambda: "Ctrl-C stops everything" in log.read_text(), 120)
        text = log.read_text()
        for expected in (f"http://127.0.0.1:{port}/metrics", "http://127.0.0.1:9890/alerts", "backfilling"):
            assert expected in text
        wait_for("the exporter scraped", lambda: prometheus("rag_exporter_up == 1"), 60)
        history = wait_for("60 days of backfilled history", lambda: prometheus(
            'count_over_time(rag_model_tokens{model="gpt-4o",token_type="prompt"}[60d])'), 30)
        assert len(history) == 1, "backfill and live samples are one series (same job and instance)"
        assert history[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        assert float(history[0]["value"][1]) > 24 * 50, "hourly samples over about 59 days"
        wait_for("the injected llm anomaly as an alert", lambda: prometheus(
            'ALERTS{alertname="RagComponentLatencyAnomaly",component="llm",severity="critical"}'), 60)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True).stdout
    assert not leftovers.strip(), f"processes left running: {leftovers}"

"""The README's demo command, run for real: embedded PostgreSQL, exporter, backfilled Prometheus, Alertmanager."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import urllib.parse

import pytest

from conftest import free_port, require_binary
from rag_analytics_exporter.anomaly import BASELINES
from rag_analytics_exporter.demo import print_notification
from stack import http_json, wait_for

pytestmark = pytest.mark.e2e


def prometheus(port: int, expr: str) -> list:
    try:
        body = http_json(f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    except OSError:
        return []
    return body["data"]["result"]


@pytest.mark.parametrize("baseline", BASELINES)
def test_demo_runs_the_stack_with_history_and_stops_cleanly(tmp_path, baseline):
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        require_binary(binary)
    port, prometheus_port = free_port(), free_port()
    log = tmp_path / "demo.log"
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir",
                                str(tmp_path / "demo"), "--port", str(port), "--prometheus-port", str(prometheus_port),
                                "--alertmanager-port", str(free_port()), "--baseline", baseline], stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    try:
        wait_for("the demo to be ready", lambda: "Ctrl-C stops everything" in log.read_text(), 120)
        text = log.read_text()
        urls = (f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{prometheus_port}/alerts")
        for expected in (*urls, "backfilling"):
            assert expected in text
        wait_for("the exporter scraped", lambda: prometheus(prometheus_port, "rag_exporter_up == 1"), 60)
        history = wait_for("60 days of backfilled history", lambda: prometheus(prometheus_port,
            'count_over_time(rag_model_tokens{model="gpt-4o",token_type="prompt"}[60d])'), 30)
        assert len(history) == 1, "backfill and live samples are one series (same job and instance)"
        assert history[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        assert float(history[0]["value"][1]) > 24 * 50, "hourly samples over about 59 days"
        wait_for("the injected llm anomaly as an alert", lambda: prometheus(prometheus_port,
            'ALERTS{alertname="RagComponentLatencyAnomaly",component="llm",severity="critical"}'), 60)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]

    def leftovers() -> str:
        return subprocess.run(["pgrep", "-f", str(tmp_path / "demo")], capture_output=True, text=True).stdout.strip()

    # The demo has waited for its children; a process that is gone may still be listed for an instant.
    wait_for("no process left running", lambda: not leftovers(), 10)


def test_concurrent_notifications_print_one_line_per_alert(capsys):
    """The sink's threads print at once; no two alerts may share a line (seen in the demo once)."""
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "RagErrorRateHigh", "severity": "warning",
                                                          "component": name}, "annotations": {"summary": "s"}}
                          for name in ("total", "search")]}
    threads = [threading.Thread(target=lambda: [print_notification("ticket", payload) for _ in range(200)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 * 200 * 2
    pattern = re.compile(r"  \[ticket\] FIRING   RagErrorRateHigh warning (total|search): s")
    assert all(pattern.fullmatch(line) for line in lines), [line for line in lines if not pattern.fullmatch(line)][:3]

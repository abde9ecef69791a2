"""The README's demo command, run for real: embedded PostgreSQL, exporter, backfilled Prometheus, Alertmanager."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from conftest import REPO, free_port, require_binary
from rag_analytics_exporter.demo import print_notification
from stack import http_json, wait_for

pytestmark = pytest.mark.e2e


def prometheus(port: int, expr: str) -> list:
    try:
        body = http_json(f"http://127.0.0.1:{port}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    except OSError:
        return []
    return body["data"]["result"]


# The demo prints the incident's page this long after it starts; measured (docs/testing.md) at 99 s to
# 114 s from the command's start on a loaded machine, against the target of 3 minutes. A wait, not
# a timing assertion: the figure is printed, and a slow machine makes the test slower, never red.
PAGE_WAIT = 300


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """One demo folder for both runs: the second run starts where the first one stopped."""
    return tmp_path_factory.mktemp("demo") / "demo"


# The default baseline first, then the old design's; backfill's tests cover every mode on the same data.
@pytest.mark.parametrize(("baseline", "delay"), [("robust", None), ("plain", 5)], ids=["first-run", "second-run"])
def test_demo_runs_the_stack_pages_the_live_incident_and_stops_cleanly(tmp_path, demo_dir, baseline, delay):
    """A newcomer's ./scripts/demo, twice in the same folder: the second run must page as the first did."""
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        require_binary(binary)
    port, prometheus_port, alertmanager_port = free_port(), free_port(), free_port()
    log = tmp_path / "demo.log"
    first_run = delay is None
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir", str(demo_dir),
                                "--port", str(port), "--prometheus-port", str(prometheus_port),
                                "--alertmanager-port", str(alertmanager_port), "--baseline", baseline,
                                *(["--incident-delay", str(delay)] if delay else [])],
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for("the demo to be ready", lambda: "Ctrl-C stops everything" in log.read_text(), 120)
        text = log.read_text()
        urls = (f"http://127.0.0.1:{port}/metrics", f"http://127.0.0.1:{prometheus_port}/alerts")
        for expected in (*urls, "divided by 30", "offset 1w, offset 1d) means 2m earlier"):
            assert expected in text
        # The days are said once, and they are the days the backfill wrote (issue 21).
        (days,) = re.findall(r"(\d+) days up to three hours ago", text)
        assert int(days) in (59, 60) and "backfilling 59 days" not in text
        wait_for("the exporter scraped", lambda: prometheus(prometheus_port, "rag_exporter_up == 1"), 60)
        if first_run:
            history = wait_for("60 days of backfilled history", lambda: prometheus(prometheus_port,
                'count_over_time(rag_model_tokens{model="gpt-4o",token_type="prompt"}[60d])'), 30)
            assert len(history) == 1, "backfill and live samples are one series (same job and instance)"
            assert history[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            assert float(history[0]["value"][1]) > 24 * 50, "hourly samples over about 59 days"
        wait_for("the injected llm anomaly as an alert", lambda: prometheus(prometheus_port,
            'ALERTS{alertname="RagComponentLatencyAnomaly",component="llm",severity="critical"}'), 60)
        page = re.compile(r"\[pager\] FIRING +RagComponentErrorBudgetBurn critical search: .*"
                          r"\(\+(\d+m)?\d+s after the incident began\)")
        wait_for("the live incident's page printed", lambda: page.search(log.read_text()), PAGE_WAIT)
        before = log.read_text().split("==> incident")[0]
        assert "RagComponentErrorBudgetBurn" not in before, "a page before the incident began"
        print(f"{'first' if first_run else 'second'} run: the page was printed {time.monotonic() - started:.0f}s "
              f"after the demo started; {page.search(log.read_text()).group(0)}")
        # The alerts' links open: Prometheus knows its external URL (issue 21).
        alerts = http_json(f"http://127.0.0.1:{alertmanager_port}/api/v2/alerts")
        assert alerts and all(a["generatorURL"].startswith(f"http://127.0.0.1:{prometheus_port}/") for a in alerts)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]

    def leftovers() -> str:
        return subprocess.run(["pgrep", "-f", str(demo_dir)], capture_output=True, text=True).stdout.strip()

    # The demo has waited for its children; a process that is gone may still be listed for an instant.
    wait_for("no process left running", lambda: not leftovers(), 10)


def test_a_taken_port_is_one_line_naming_the_option(tmp_path):
    """Issue 20 item 12: no traceback, one line that says what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir",
                                 str(tmp_path / "demo"), "--port", str(port)], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"demo: port {port} on 127.0.0.1 is taken (another demo running?); choose another with --port PORT"]
    assert not (tmp_path / "demo").exists(), "nothing started"


def test_concurrent_notifications_print_one_line_per_alert(capsys):
    """The sink's threads print at once; no two alerts may share a line (seen in the demo once)."""
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "RagComponentErrorBudgetBurn",
                                                          "severity": "warning",
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
    pattern = re.compile(r"  \[ticket\] FIRING   RagComponentErrorBudgetBurn warning (total|search): s")
    assert all(pattern.fullmatch(line) for line in lines), [line for line in lines if not pattern.fullmatch(line)][:3]


def test_an_installed_package_says_the_demo_needs_a_checkout(tmp_path):
    """Issue 22 item 2: installed as a wheel (site-packages/rag_analytics_exporter), the rules are not there."""
    site = tmp_path / "lib" / "site-packages"
    shutil.copytree(REPO / "exporter" / "rag_analytics_exporter", site / "rag_analytics_exporter")
    result = subprocess.run([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir", str(tmp_path / "d"),
                             "--port", str(free_port()), "--prometheus-port", str(free_port()),
                             "--alertmanager-port", str(free_port())], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "run the demo from a checkout with ./scripts/demo, or pass --no-prometheus" in line
    assert str(site.parent / "alerting") in line, "the message names where it looked"

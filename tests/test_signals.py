"""Signals against a real exporter process: storms of SIGHUP, and what a reload may and may not change."""

from __future__ import annotations

import base64
import http.client
import os
import random
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from conftest import free_port
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.exposition import Exposition
from rag_analytics_exporter.http.server import serve_in_thread
from rag_analytics_exporter.routes import metrics_server
from rag_analytics_exporter.snapshot import empty_snapshot
from rag_analytics_exporter.webconfig import load_web_config
from stack import wait_for
from test_security import auth_get, certs, tls_section, write_web_config  # noqa: F401 (certs: a fixture)

CLI = [sys.executable, "-m", "rag_analytics_exporter.cli"]
# SIGTERM to exit, the README's promise (measured under load: docs/testing.md).
EXIT_BOUND_SECONDS = 5.0


def users(**passwords: str) -> dict:
    return {"basic_auth_users": {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
                                 for u, p in passwords.items()}}


def start(dsn: str, web: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = os.environ | {"RAG_EXPORTER_DSN": dsn, "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen([*CLI, "serve", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}"],
                               env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    return process, port


def replace_file(path: Path, text: str) -> None:
    staged = path.with_suffix(".new")
    staged.write_text(text)
    staged.replace(path)


def status(port: int, user: str, password: str) -> int | str:
    try:
        return auth_get(port, user, password)[0]
    except OSError as exc:
        return str(exc)


def https_status(port: int, pki: dict[str, Path], user: str | None,
                 password: str | None) -> int | str:
    """The status of a TLS scrape, with basic auth when user is given; an error's text when none came."""
    context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
    headers = {} if user is None else {
        "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return str(exc)


def stop(process: subprocess.Popen, log: Path) -> float:
    """SIGTERM; the seconds to exit 0, or a failure with every thread's stack."""
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        code = process.wait(timeout=EXIT_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        process.wait()
        pytest.fail(f"no exit within {EXIT_BOUND_SECONDS}s after SIGTERM:\n{log.read_text()[-8000:]}")
    assert code == 0, log.read_text()[-8000:]
    return time.monotonic() - signalled


# Issue 29 item 5. Before: the handler set a threading.Event, whose lock the main thread may hold
# when the signal comes; a storm of SIGHUPs deadlocked it (5 runs in 5), and SIGTERM was ignored.
def test_a_storm_of_sighups_leaves_the_exporter_reloading_and_sigterm_ends_it(dsn, tmp_path):
    web, log = tmp_path / "web.yml", tmp_path / "serve.log"
    web.write_text(yaml.safe_dump(users(alice="a-pass")))
    process, port = start(dsn, web, log)
    try:
        wait_for("serving alice", lambda: status(port, "alice", "a-pass") == 200, 30)
        draw = random.Random(29)
        counts = []
        for storm, user in enumerate(("bob", "carol", "dave")):
            counts.append(draw.randint(300, 600))
            for _ in range(counts[-1]):
                process.send_signal(signal.SIGHUP)
                time.sleep(draw.uniform(0, 0.02))
            for _ in range(500):  # and back to back, which is when a handler most often lands inside a lock
                process.send_signal(signal.SIGHUP)
            assert process.poll() is None, log.read_text()[-8000:]
            # Still handling signals: one more SIGHUP applies a changed file. Written whole and renamed
            # into place, as a config tool should: the storm's last reloads may still be reading it.
            replace_file(web, yaml.safe_dump(users(**{user: f"{user}-pass"})))
            process.send_signal(signal.SIGHUP)
            wait_for(f"{user} let in after storm {storm + 1}'s last SIGHUP",
                     lambda u=user: status(port, u, f"{u}-pass") == 200, 10)
        assert status(port, "alice", "a-pass") == 401
        took = stop(process, log)
        print(f"storms of {counts} SIGHUPs; exited {took:.2f}s after SIGTERM (bound {EXIT_BOUND_SECONDS}s)")
        assert "RecursionError" not in log.read_text() and "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def refusals(log: Path) -> int:
    return sum("level=ERROR" in line and "not reloaded, the previous one stays in force" in line
               for line in log.read_text().splitlines())


# Issue 29 item 4. Before: each of these files was "reloaded" as plain HTTP with no users, and
# /metrics answered anyone.
BLANK_FILES = {"empty": "", "only comments": "# rewritten by the config tool\n",
               "sections without values": "tls_server_config:\nbasic_auth_users:\n"}


def test_a_blank_web_config_never_turns_tls_or_auth_off_on_sighup(dsn, tmp_path, certs):  # noqa: F811 (the fixture)  # noqa: F811
    web, log = tmp_path / "web.yml", tmp_path / "serve.log"
    web.write_text(yaml.safe_dump(tls_section(certs) | users(alice="a-pass")))
    process, port = start(dsn, web, log)
    try:
        wait_for("serving alice over TLS", lambda: https_status(port, certs, "alice", "a-pass") == 200, 30)
        for refused, (name, text) in enumerate(BLANK_FILES.items(), start=1):
            web.write_text(text)
            process.send_signal(signal.SIGHUP)
            wait_for(f"the {name} file refused at ERROR", lambda n=refused: refusals(log) == n, 10)
            assert https_status(port, certs, "alice", "a-pass") == 200, name
            assert https_status(port, certs, None, None) == 401, name
            assert status(port, "alice", "a-pass") != 200, f"{name}: plain HTTP answered"
        # Lowering security on purpose: a file that keeps alice and has no tls_server_config key.
        web.write_text(yaml.safe_dump(users(alice="a-pass")))
        process.send_signal(signal.SIGHUP)
        wait_for("plain HTTP after the deliberate change", lambda: status(port, "alice", "a-pass") == 200, 10)
        assert status(port, "mallory", "guess") == 401
        stop(process, log)
        assert "Traceback" not in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# Issue 29 item 6. Before: a kept plain connection went on being served in plain HTTP after TLS was
# turned on (and a kept TLS one in TLS after it was turned off), until its idle timeout of 75 s.
def test_a_reload_closes_kept_connections_whose_tls_no_longer_matches(certs):  # noqa: F811 (the fixture)
    server = metrics_server(("127.0.0.1", 0), Exposition(lambda: empty_snapshot(Config())))
    serve_in_thread(server)
    port = server.server_address[1]
    tls = load_web_config(write_web_config(certs["ca.crt"].parent / "web.yml", tls_section(certs))).tls

    def reconfigure(context: ssl.SSLContext | None) -> None:
        server.loop.call_soon_threadsafe(lambda: server.reconfigure(tls=context, headers={}, authorize=None))

    try:
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        plain.request("GET", "/-/healthy")
        assert plain.getresponse().read() == b"OK\n"
        reconfigure(tls)
        started = time.monotonic()
        assert plain.sock.recv(1) == b"", "the kept plain connection is closed"
        print(f"plain connection closed {time.monotonic() - started:.3f}s after TLS was turned on (bound 5 s)")
        assert https_status(port, certs, None, None) == 200
        secure = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                             context=ssl.create_default_context(cafile=str(certs["ca.crt"])))
        secure.request("GET", "/-/healthy")
        assert secure.getresponse().read() == b"OK\n"
        reconfigure(None)
        assert secure.sock.recv(1) == b"", "the kept TLS connection is closed"
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        plain.request("GET", "/-/healthy")
        assert plain.getresponse().status == 200
    finally:
        server.stop(2.0)

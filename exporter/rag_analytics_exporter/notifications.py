"""The demo's Alertmanager webhook sink: each notification printed as an on-call person would first see it."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_notifications(on_notification: Callable[[str, dict[str, Any]], None], host: str = "127.0.0.1",
                        port: int = 0) -> ThreadingHTTPServer:
    """An Alertmanager webhook receiver serving on a thread: on_notification(receiver path, payload) per POST."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            on_notification(self.path.strip("/"), payload)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="notifications").start()
    return server


_print_lock = threading.Lock()


def since(seconds: float) -> str:
    """A delay as the terminal shows it: 2m10s, 45s."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def print_notification(receiver: str, payload: dict[str, Any], incident_started: float | None = None) -> None:
    """Show a notification the way an on-call person would first see it: one line per alert, and how long
    after the incident began it arrived."""
    when = ""
    if incident_started is not None:
        when = f"  (+{since(time.time() - incident_started)} after the incident began)"
    lines = []
    for alert in payload.get("alerts", []):
        labels = alert["labels"]
        # A page about the whole service (no component, model or table) has no slot for one.
        said = [labels.get("alertname"), labels.get("severity"),
                labels.get("component") or labels.get("model") or labels.get("table")]
        lines.append(f"  [{receiver}] {alert['status'].upper():8} {' '.join(str(part) for part in said if part)}: "
                     f"{alert['annotations'].get('summary', '')}{when}\n")
    # Notifications arrive on the sink's threads at once; print() writes the text and its newline
    # separately, so two of them could share a line. One locked write per notification cannot.
    with _print_lock:
        sys.stdout.write("".join(lines))
        sys.stdout.flush()


class NotificationPrinter:
    """print_notification, with the time since the incident began once it has."""

    def __init__(self) -> None:
        self.incident_started: float | None = None

    def __call__(self, receiver: str, payload: dict[str, Any]) -> None:
        print_notification(receiver, payload, self.incident_started)

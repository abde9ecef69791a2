"""What only the tests need from the demo's stack: a recording webhook sink and configs with test timings.

The demo (rag_analytics_exporter.demo) prints the notifications it receives and scales the committed
timings by its time factor; the end-to-end tests record the notifications to assert on them, run
Alertmanager with second-long timings, and scrape several labelled deployments at once. Those needs
live here, built on the demo's own receiver and configs, so the shipped package carries none of them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from rag_analytics_exporter import demo


class WebhookSink:
    """A local Alertmanager webhook receiver recording every notification as (receiver path, payload)."""

    def __init__(self, host: str, port: int) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server = demo.serve_notifications(self._record, host, port)
        self.url = f"http://{host}:{self._server.server_address[1]}"

    def _record(self, receiver: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append((receiver, payload))

    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """A copy of the notifications so far, as (receiver path, payload)."""
        with self._lock:
            return list(self.notifications)

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


def prometheus_config(exporter_targets: str | list[dict[str, Any]], alertmanager_target: str | None, interval: str,
                      rule_files: list[Path]) -> str:
    """The demo's Prometheus config (YAML text) scraping one target, or several deployments.

    exporter_targets: one target, or static_configs ({targets, labels}) naming several deployments.
    """
    if isinstance(exporter_targets, str):
        return demo.prometheus_config(exporter_targets, alertmanager_target, interval, rule_files)
    document = yaml.safe_load(demo.prometheus_config("", alertmanager_target, interval, rule_files))
    document["scrape_configs"][0]["static_configs"] = exporter_targets
    return yaml.safe_dump(document, sort_keys=False)


def alertmanager_config(webhook_base: str) -> str:
    """alerting/alertmanager.yml delivering to webhook_base, grouping within a second or two so that a test
    sees a notification as soon as Alertmanager has the alert (the repeat interval is the committed one)."""
    document = yaml.safe_load(demo.alertmanager_config(webhook_base))
    for route in [document["route"], *document["route"].get("routes", [])]:
        if route is document["route"] or "group_wait" in route:
            route.update(group_wait="1s", group_interval="2s")
    return yaml.safe_dump(document, sort_keys=False)

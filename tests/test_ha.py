"""The production topology end to end, real processes throughout.

Two deployments, each with its own PostgreSQL: A (production) with two exporter replicas, B (staging)
with one. A Prometheus HA pair runs the committed deploy/ha/prometheus-{a,b}.yml (local addresses
substituted), both remote-writing to one VictoriaMetrics, and two clustered Alertmanagers deliver to
a webhook sink. Only the waiting is
shortened: scrapes and rule evaluation every second, `for:` divided by 300, Alertmanager grouping
within 1-2 s and a peer timeout of 5 s. Expressions, labels, routes, inhibitions and the HA settings
(external replica label, alert_relabel_configs) are the committed ones.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

import pytest
import yaml

from conftest import REPO, execute, free_port, one_utc_day
from harness import WebhookSink
from rag_analytics_exporter.app import Running, start_exporter
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.demo import write_scaled_rules
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Alertmanager, ControlledPostgres, Prometheus, VictoriaMetrics, committed_ha_config, wait_for

pytestmark = pytest.mark.e2e

HA = REPO / "deploy" / "ha"
# The second Alertmanager of the cluster waits this long for the first one's notification log before it
# notifies itself: a duplicate, were the cluster not deduplicating, would come this long after the first.
PEER_TIMEOUT = 5
# How long the test watches for a duplicate or a resolve: the peer timeout plus three group intervals
# (2 s in the test timings), so a second notification from either Alertmanager would have arrived.
QUIET = PEER_TIMEOUT + 3 * 2
# The exporters score yesterday by the wall clock, and the test makes the seed's yesterday anomalous: it must end
# on the day it seeded. Measured 60 s (the topology and the test) at load 1 to 2.5; four times that.
HA_SECONDS = 240


def received(sink: WebhookSink) -> list[tuple[str, dict, dict]]:
    """(receiver, payload, alert) for every alert of every notification so far."""
    return [(receiver, payload, alert) for receiver, payload in sink.received() for alert in payload["alerts"]]


def notifications(sink: WebhookSink, status: str, **labels: str) -> list[tuple[str, dict, dict]]:
    return [(r, p, a) for r, p, a in received(sink)
            if a["status"] == status and all(a["labels"].get(k) == v for k, v in labels.items())]


def times_notified(sink: WebhookSink) -> Counter:
    """How many notifications carried each alert, by status and labels."""
    return Counter((alert["status"], json.dumps(alert["labels"], sort_keys=True)) for _, _, alert in received(sink))


Stoppable: TypeAlias = ControlledPostgres | Running | Alertmanager | VictoriaMetrics | Prometheus
S = TypeVar("S", bound=Stoppable)


@dataclass
class Topology:
    """The running production topology, and the processes the test loses on purpose."""

    sink: WebhookSink
    dsns: dict[str, str]
    deployment_a: dict[str, str]
    deployment_b: dict[str, str]
    exporters: dict[str, list[Running]]
    targets: list[list[str]]
    alertmanagers: list[Alertmanager]
    store: VictoriaMetrics
    prometheus: dict[str, Prometheus]
    scraping_since: float
    lost: list[Stoppable]

    def lose(self, *items: Stoppable) -> None:
        """Stop these now; the teardown leaves them alone (stopping an exporter twice would wait for nothing)."""
        for item in items:
            item.stop()
            self.lost.append(item)


def _stop_quietly(item: Stoppable, lost: list[Stoppable]) -> None:
    """Teardown of one process: an error stopping one must not leave the others running."""
    if any(item is gone for gone in lost):
        return
    with contextlib.suppress(Exception):
        (item.close if isinstance(item, ControlledPostgres) else item.stop)()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    """Two deployments, a clustered Alertmanager pair, VictoriaMetrics and a Prometheus HA pair, all
    scraping; stopped in the reverse order of their start."""
    lost: list[Stoppable] = []
    with contextlib.ExitStack() as stack:
        sink = WebhookSink("127.0.0.1", 0)
        stack.callback(sink.close)

        def started(item: S) -> S:
            stack.callback(_stop_quietly, item, lost)
            return item

        statics = yaml.safe_load((HA / "prometheus-a.yml").read_text())["scrape_configs"][0]["static_configs"]
        assert [len(static["targets"]) for static in statics] == [2, 1], "A has two replicas, B one"
        deployment_a, deployment_b = ({k: str(v) for k, v in static["labels"].items()} for static in statics)
        dsns: dict[str, str] = {}
        seeded_at = one_utc_day(HA_SECONDS)
        exporters: dict[str, list[Running]] = {"A": [], "B": []}
        for name, replicas in (("A", 2), ("B", 1)):
            postgres = started(ControlledPostgres(tmp_path / f"pg-{name}"))
            dsns[name] = postgres.dsn
            init_db(postgres.dsn)
            seed(postgres.dsn, scale=DemoScale(days=40, chunks=1000), anomalies=False, at=seeded_at)
            config = Config(dsn=postgres.dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=2,
                            chunk_refresh_interval=2, max_data_age=30, statement_timeout=1, connect_timeout=1)
            for _ in range(replicas):
                exporters[name].append(started(start_exporter(config, password=None)))
        gossip = [f"127.0.0.1:{free_port()}" for _ in range(2)]
        alertmanagers = [started(Alertmanager(tmp_path / f"am-{i}", sink.url, cluster=gossip[i], peers=[gossip[1 - i]],
                                              peer_timeout=f"{PEER_TIMEOUT}s")) for i in range(2)]
        wait_for("the two Alertmanagers to form one cluster",
                 lambda: all(len(am.status()["cluster"].get("peers") or []) == 2 for am in alertmanagers), 30)
        rules = write_scaled_rules(tmp_path / "rules", factor=300, windows=False)
        targets = [[f"127.0.0.1:{e.port}" for e in exporters[name]] for name in ("A", "B")]
        store = started(VictoriaMetrics(tmp_path / "vm", extra_args=["-dedup.minScrapeInterval=1s"]))
        prometheus = {replica: started(Prometheus(tmp_path / f"prom-{replica}", config=committed_ha_config(
            HA / f"prometheus-{replica}.yml", rules, store.write_url, [am.address for am in alertmanagers],
            targets=targets))) for replica in ("a", "b")}
        for server in prometheus.values():
            wait_for("all three exporters scraped and reading",
                     lambda s=server: len(s.query("rag_exporter_up == 1")) == 3, 30)
        yield Topology(sink, dsns, deployment_a, deployment_b, exporters, targets, alertmanagers, store, prometheus,
                       scraping_since=time.time(), lost=lost)


def test_one_notification_per_alert_through_losing_a_replica_a_prometheus_and_an_alertmanager(topology: Topology):
    sink, dsns, deployment_a, deployment_b = topology.sink, topology.dsns, topology.deployment_a, topology.deployment_b
    alertmanagers, targets, store, prometheus = (topology.alertmanagers, topology.targets, topology.store,
                                                 topology.prometheus)
    scraping_since = topology.scraping_since
    assert not received(sink), "nothing fires before the anomaly"

    # 1. An anomalous day in A: yesterday's llm latency five times its usual.
    execute(dsns["A"], "UPDATE latency_metrics SET avg_time_ms = avg_time_ms * 5 "
                       "WHERE component = 'llm' AND date = (SELECT max(date) - 1 FROM latency_metrics)")
    ticket = {"alertname": "RagComponentLatencyAnomaly", "severity": "critical", "component": "llm",
            **deployment_a}
    # A day that has ended opens a ticket, never a page (alertmanager.yml): one notification a deployment a day.
    wait_for("A's critical llm anomaly at the ticket receiver",
             lambda: [r for r, _, _ in notifications(sink, "firing", **ticket) if r == "ticket"], 60)
    time.sleep(QUIET)
    first = [payload for _, payload in sink.received()]
    for payload in first:
        print("webhook payload:", json.dumps(payload, sort_keys=True))
    counts = times_notified(sink)
    assert all(n == 1 for n in counts.values()), f"an alert was notified more than once: {counts}"
    assert not any(a["labels"].get("environment") == deployment_b["environment"] for _, _, a in received(sink))
    tickets = notifications(sink, "firing", **ticket)
    assert len(tickets) == 1, f"one notification for one alert, not {[a['labels'] for _, _, a in tickets]}"
    ((_, payload, alert),) = tickets
    assert not {"replica", "grafana_url", "instance"} & set(alert["labels"]), alert["labels"]
    assert alert["annotations"]["description"].startswith("[production/support-bot] "), alert["annotations"]
    assert payload["groupLabels"] == deployment_a

    # Both servers wrote every sample to the store as the same series (no replica label), and the store
    # keeps one sample per scrape interval (1 s here): about as many as one server holds, not twice.
    up = f'up{{instance="{targets[0][1]}"}}'
    # 20 s of both servers' samples, which VictoriaMetrics shows after -search.latencyOffset, + 10 s.
    settled = VictoriaMetrics.LATENCY_OFFSET + 10
    time.sleep(max(0.0, scraping_since + 20 + settled - time.time()))
    at = time.time() - settled
    assert len(store.query('up{job="rag-analytics-exporter"}', at=at)) == 3, "one series per target, not per server"
    held = [float(server.query(f"count_over_time({up}[20s])", at=at)[0]["value"][1])
            for server in (prometheus["b"], store)]
    print(f"samples of one series over 20 s: Prometheus b {held[0]:g}, VictoriaMetrics {held[1]:g}")
    assert held[1] < 1.5 * held[0], f"the store kept both servers' samples: {held}"

    # 2. Lose one exporter replica of A, one Prometheus and the Alertmanager that sent the ticket.
    sender = next(am for am in alertmanagers if payload["externalURL"].rstrip("/").endswith(am.address))
    lost_replica = targets[0][0]
    topology.lose(topology.exporters["A"][0], prometheus["a"], sender)
    survivor = next(am for am in alertmanagers if am is not sender)
    replica_down = {"alertname": "RagAnalyticsExporterDown", "severity": "warning", "instance": lost_replica,
                    **deployment_a}
    wait_for("the lost replica reported through the surviving Prometheus and Alertmanager",
             lambda: notifications(sink, "firing", **replica_down), 60)
    time.sleep(QUIET)
    for _, payload in sink.received()[len(first):]:
        print("webhook payload after the losses:", json.dumps(payload, sort_keys=True))
    counts = times_notified(sink)
    assert all(n == 1 for n in counts.values()), f"an alert was notified more than once: {counts}"
    assert len(notifications(sink, "firing", **ticket)) == 1, "the ticket was sent again"
    assert not notifications(sink, "resolved", **ticket), "the ticket was resolved while the anomaly lasts"
    assert not notifications(sink, "resolved"), "nothing has resolved"
    assert not any(a["labels"].get("environment") == deployment_b["environment"] for _, _, a in received(sink))
    active = [a for a in survivor.alerts() if all(a["labels"].get(k) == v for k, v in ticket.items())]
    assert [a["status"]["state"] for a in active] == ["active"], active
    assert prometheus["b"].query('ALERTS{alertname="RagComponentLatencyAnomaly",alertstate="firing",'
                                 'severity="critical",component="llm",environment="production"}')

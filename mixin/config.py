"""The mixin's one setting: which series are ours, which labels name a deployment, which a replica.

Like a monitoring mixin's `_config` (grafana/jsonnet-libs' filteringSelector, groupLabels and
instanceLabels): every alert, recording rule and dashboard query is built from these, so a site
that names its deployments differently changes them here and runs `python -m mixin`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MixinConfig:
    """Selectors and label conventions shared by the rules and the dashboards."""

    # Every series the exporter serves carries this: it is the scrape job's name.
    selector: str = 'job="rag-analytics-exporter"'
    # A deployment is one RAG service in one environment, e.g. support-bot in production. Prometheus
    # attaches these as target labels (scrape config `labels:`, a ServiceMonitor's targetLabels); the
    # exporter never sets them itself. Every business alert fires once per deployment, and no
    # dashboard adds two deployments together.
    deployment_labels: tuple[str, ...] = ("environment", "rag_service")
    # Labels that tell the replicas of one deployment's exporter apart. Replicas read the same tables,
    # so their business series are equal: they are de-duplicated (max without these), never summed.
    replica_labels: tuple[str, ...] = ("instance", "pod")
    # The provisioned Prometheus datasource: the default of the dashboards' datasource variable.
    datasource_uid: str = "rag-prometheus"
    # Alert links lead here unless Prometheus has a grafana_url external label.
    grafana_url: str = "http://localhost:3000"
    runbook_url: str = "https://github.com/rag-analytics-exporter/rag-analytics-exporter/blob/main/docs/runbooks.md"


CONFIG = MixinConfig()

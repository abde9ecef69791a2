"""docker-compose.yml without Docker: every path, port, name and setting it names is consistent."""

from __future__ import annotations

import re

import pytest
import tomllib
import yaml

from conftest import REPO
from mixin.config import CONFIG
from rag_analytics_exporter.config import from_mapping

pytestmark = pytest.mark.unit

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((REPO / "alerting" / "prometheus.yml").read_text())
GRAFANA_DS = yaml.safe_load((REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
GRAFANA_DASH = yaml.safe_load((REPO / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text())


def mounts(service: str) -> dict[str, str]:
    """container path -> host path (bind mounts) or volume name."""
    result = {}
    for entry in SERVICES[service].get("volumes", []):
        source, target = entry.split(":")[:2]
        result[target] = source
    return result


def test_every_bind_mount_exists():
    for name in SERVICES:
        for source in mounts(name).values():
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"


def test_named_volumes_are_declared_and_used():
    used = {source for name in SERVICES for source in mounts(name).values() if not source.startswith((".", "/"))}
    assert used == set(COMPOSE["volumes"])


def test_images_are_pinned_and_services_checked():
    for name, service in SERVICES.items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
            assert re.search(r":v?\d+\.\d+", image), f"{name}: {image} is not pinned to a version"
        if service.get("restart") == "unless-stopped":
            assert "healthcheck" in service, f"{name} runs for good but has no health check"


def test_no_secret_in_the_file_and_every_variable_in_the_example_env():
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEY", key):
                assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", str(value)), f"{name}.{key} holds a literal value"
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", (REPO / "docker-compose.yml").read_text()))
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert used and used <= set(example), f"not in .env.example: {used - set(example)}"


def test_prometheus_scrapes_the_exporter_service_on_its_port():
    (job,) = PROMETHEUS["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in SERVICES
    assert f"--web.listen-address=0.0.0.0:{port}" in SERVICES[host]["command"]
    assert f"{port}:{port}" in SERVICES[host]["ports"]
    (alertmanager,) = PROMETHEUS["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    am_host, am_port = alertmanager.split(":")
    assert am_host in SERVICES and am_port == "9093"  # Alertmanager's default port
    assert f"{am_port}:{am_port}" in SERVICES[am_host]["ports"]


def test_backfill_gives_the_history_the_scrape_target_labels():
    """The backfilled series must be the live ones: same instance, job and deployment labels."""
    (job,) = PROMETHEUS["scrape_configs"]
    static = job["static_configs"][0]
    command = " ".join(SERVICES["backfill"]["command"])
    assert f"--instance {static['targets'][0]}" in command
    assert set(CONFIG.deployment_labels) <= set(static["labels"])
    labels = dict(re.findall(r"--label (\w+)=(\S+)", command))
    assert labels == static["labels"], (labels, static["labels"])


def test_the_long_term_store_is_written_read_and_backfilled():
    """Prometheus remote-writes to the victoriametrics service, Grafana reads it, the backfill reaches it."""
    store = SERVICES["victoriametrics"]
    port = next(arg.rsplit(":", 1)[1] for arg in store["command"] if arg.startswith("-httpListenAddr="))
    assert f"{port}:{port}" in store["ports"]
    (writer,) = PROMETHEUS["remote_write"]
    assert writer["url"] == f"http://victoriametrics:{port}/api/v1/write"
    urls = {ds["uid"]: ds["url"] for ds in GRAFANA_DS["datasources"]}
    assert urls["rag-longterm"] == f"http://victoriametrics:{port}"
    assert f"http://victoriametrics:{port}/api/v1/import/prometheus" in " ".join(SERVICES["prometheus-init"]["command"])
    assert "victoriametrics" in SERVICES["prometheus-init"]["depends_on"]
    assert any(arg.startswith("-dedup.minScrapeInterval=") for arg in store["command"])


def test_prometheus_loads_the_mounted_config_and_rules():
    assert mounts("prometheus")["/etc/prometheus/prometheus.yml"] == "./alerting/prometheus.yml"
    assert mounts("prometheus")["/etc/prometheus/rules"] == "./alerting/rules"
    assert PROMETHEUS["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in SERVICES["prometheus"]["command"]), \
        "backfilled history needs a retention longer than the default 15d"


def test_grafana_datasources_and_dashboards_point_at_the_services_and_mounts():
    urls = {ds["uid"]: ds["url"] for ds in GRAFANA_DS["datasources"]}
    assert urls["rag-prometheus"] == "http://prometheus:9090"
    assert urls["rag-alertmanager"] == "http://alertmanager:9093"
    assert "9090:9090" in SERVICES["prometheus"]["ports"]
    (provider,) = GRAFANA_DASH["providers"]
    assert provider["allowUiUpdates"] is False and provider["folder"] == "RAG Analytics"
    assert mounts("grafana")[provider["options"]["path"]] == "./grafana/dashboards"
    assert mounts("grafana")["/etc/grafana/provisioning"] == "./grafana/provisioning"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).exists()


def test_alertmanager_placeholders_exist_in_the_committed_config():
    config = (REPO / "alerting" / "alertmanager.yml").read_text()
    command = " ".join(SERVICES["alertmanager"]["command"])
    for placeholder in re.findall(r"s\|(http://[^|]+)\|", command):
        assert placeholder in config, f"compose rewrites {placeholder}, which alertmanager.yml does not contain"
    assert mounts("alertmanager")["/etc/alertmanager/alertmanager.yml"] == "./alerting/alertmanager.yml"


def test_exporter_environment_is_a_valid_config_and_uses_the_read_only_role():
    for name in ("exporter", "backfill"):
        env = SERVICES[name]["environment"]
        assert "user=rag_exporter" in env["RAG_EXPORTER_DSN"], f"{name} should use the read-only role"
        from_mapping({}, env={k: str(v) for k, v in env.items()})  # raises ConfigError if not
    role_sql = mounts("postgres")["/docker-entrypoint-initdb.d/02-readonly-role.sql"]
    assert "rag_exporter" in (REPO / role_sql).read_text()


def test_dockerfile_installs_the_console_script_it_runs():
    dockerfile = (REPO / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", dockerfile, flags=re.M):
        for path in source.split():
            assert (REPO / path).exists(), f"Dockerfile copies missing {path}"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert re.search(r'ENTRYPOINT \["(\S+)"\]', dockerfile).group(1) in scripts
    assert "USER 10001" in dockerfile
    for name in ("seed", "exporter"):
        assert SERVICES[name]["build"] == "."

"""Static checks of the alerting files with the real promtool and amtool, plus their conventions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from conftest import RELEASES, REPO, release_binary
from mixin.config import CONFIG

ALERTING = REPO / "alerting"
RULE_FILES = sorted((ALERTING / "rules").glob("*.yml"))
TEST_FILES = sorted((ALERTING / "tests").glob("*_test.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"


def alert_rules() -> list[dict]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


@pytest.mark.parametrize("release", RELEASES)
def test_promtool_check_rules_is_clean(release):
    promtool = release_binary("promtool", release)
    result = subprocess.run([promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.stem)
def test_promtool_unit_tests_pass(release, test_file):
    """Each test file on Prometheus 2.42 and 3: 3's ranges are left-open, so a sample exactly on a window's
    edge counts in 2.42 and not in 3 (the tests keep samples off the edges; docs/compatibility.md)."""
    promtool = release_binary("promtool", release)
    result = subprocess.run([promtool, "test", "rules", test_file.name], capture_output=True, text=True,
                            timeout=300, cwd=ALERTING / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.unit
def test_every_rules_file_has_a_test_file_that_loads_it():
    for path in RULE_FILES:
        test_file = ALERTING / "tests" / f"{path.stem}_test.yml"
        assert test_file.exists(), f"{path.name} has no {test_file.name}"
        assert f"../rules/{path.name}" in yaml.safe_load(test_file.read_text())["rule_files"]


@pytest.mark.unit
def test_every_alert_is_tested_on_both_sides():
    """Each alert appears in a test with exp_alerts: [] (does not fire) and with alerts (fires)."""
    fired, quiet = set(), set()
    for test_file in (ALERTING / "tests").glob("*_test.yml"):
        for group in yaml.safe_load(test_file.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fired, f"never seen firing: {names - fired}"
    assert names <= quiet, f"never seen quiet: {names - quiet}"


@pytest.mark.unit
def test_alert_conventions():
    anchors = set(re.findall(r"^## (Rag\w+)", RUNBOOKS.read_text(), flags=re.M))
    for rule in alert_rules():
        name = rule["alert"]
        assert re.fullmatch(r"Rag[A-Z][A-Za-z]+", name), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}, name
        assert "{{" in annotations["description"], f"{name}: description is not templated"
        assert annotations["runbook_url"].endswith(f"runbooks.md#{name.lower()}"), name
        assert name in anchors, f"{name} has no section in docs/runbooks.md"


@pytest.mark.unit
def test_every_number_comes_from_the_mixin_config(monkeypatch):
    """Changing a number in mixin/config.py changes the expression and the description alike."""
    import dataclasses
    import json

    from mixin import rules, slo

    def rendered() -> str:
        return json.dumps({name: item["document"] for name, item in rules.render().items()})

    before = rendered()
    changed = dataclasses.replace(CONFIG, availability_objective=0.99, feedback_negative_ratio=0.35,
                                  traffic_drop_ratio=0.45, latency_page_factor=1.75, slo_min_requests=250,
                                  zscore_critical=7, daily_table_stale_seconds=10800)
    for module in (rules, slo):
        monkeypatch.setattr(module, "CONFIG", changed)
    after = rendered()
    assert after != before
    burn = {a["labels"]["severity"]: a for a in json.loads(after)["slo.yml"]["groups"][0]["rules"]
            if a.get("alert") == "RagComponentErrorBudgetBurn"}
    page = burn["critical"]
    assert "> 0.144)" in page["expr"] and ">= 250" in page["expr"], page["expr"]  # 14.4 x 1 %
    assert "budget of 1 %" in page["annotations"]["description"]
    assert "with at least 250 requests" in page["annotations"]["description"]
    for text in ("> 0.35", "threshold 35 %", "< 0.45", "threshold 45 %", "> 1.75 *", "more than 1.75 times",
                 r"> 7\n", "critical above 7", "> 10800", "3h for the daily tables"):
        assert text in after, text
    assert "rag:alert_threshold" not in after


@pytest.fixture(scope="module", params=RELEASES)
def amtool(request) -> str:
    """Debian's amtool (Alertmanager 0.25) and the pinned one: 0.27 and later parse matchers with the UTF-8
    parser, which the config's matchers must pass too."""
    return release_binary("amtool", request.param)


def test_amtool_check_config(amtool):
    result = subprocess.run([amtool, "check-config", str(ALERTING / "alertmanager.yml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def route(amtool: str, receiver: str, labels: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([amtool, "config", "routes", "test", f"--config.file={ALERTING / 'alertmanager.yml'}",
                           f"--verify.receivers={receiver}", *(f"{k}={v}" for k, v in labels.items())],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", yaml.safe_load((ALERTING / "routes_test.yml").read_text()),
                         ids=lambda c: f"{c['labels'].get('alertname')}-{c['labels'].get('severity')}")
def test_routing(amtool, case):
    result = route(amtool, case["receiver"], case["labels"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_routing_check_can_fail(amtool):
    """The routing cases would catch a wrong receiver."""
    assert route(amtool, "pager", {"alertname": "X", "severity": "warning"}).returncode != 0


@pytest.mark.unit
def test_alertmanager_keeps_deployments_apart():
    """Grouping and every inhibition name the deployment labels: one deployment's alerts are never merged
    into another's notification, nor silence another's."""
    config = yaml.safe_load((ALERTING / "alertmanager.yml").read_text())
    assert set(CONFIG.deployment_labels) <= set(config["route"]["group_by"])
    assert not set(CONFIG.replica_labels) & set(config["route"]["group_by"]), "replicas would split notifications"
    for rule in config["inhibit_rules"]:
        assert set(CONFIG.deployment_labels) <= set(rule["equal"]), rule
        assert not set(CONFIG.replica_labels) & set(rule["equal"]), f"a deployment-wide alert names no replica: {rule}"


@pytest.mark.unit
def test_rules_are_what_the_mixin_generates():
    result = subprocess.run([sys.executable, "-m", "mixin", "--check"], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("release", RELEASES)
def test_the_ha_pair_differs_only_in_its_replica_label_and_drops_it_on_the_way_out(release):
    """deploy/ha: two identical servers but for `replica`, which (with grafana_url, a setting) never leaves them:
    not on alerts (Alertmanager would see two different alerts), not on remote_write (no de-duplication)."""
    paths = [REPO / "deploy" / "ha" / f"prometheus-{replica}.yml" for replica in "ab"]
    result = subprocess.run([release_binary("promtool", release), "check", "config", *map(str, paths)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    a, b = (yaml.safe_load(path.read_text()) for path in paths)
    assert (a["global"]["external_labels"]["replica"], b["global"]["external_labels"]["replica"]) == ("a", "b")
    b["global"]["external_labels"]["replica"] = "a"
    assert a == b
    for relabel in (a["alerting"]["alert_relabel_configs"], a["remote_write"][0]["write_relabel_configs"]):
        (rule,) = relabel
        assert rule["action"] == "labeldrop"
        assert re.fullmatch(rule["regex"], "replica") and re.fullmatch(rule["regex"], "grafana_url")
        assert not any(re.fullmatch(rule["regex"], label) for label in CONFIG.deployment_labels)
    (job,) = a["scrape_configs"]
    assert job["job_name"] == "rag-analytics-exporter"
    assert all(set(CONFIG.deployment_labels) <= set(static["labels"]) for static in job["static_configs"])


@pytest.mark.parametrize("release", RELEASES)
def test_compose_prometheus_config_is_valid(release):
    result = subprocess.run([release_binary("promtool", release), "check", "config",
                             str(ALERTING / "prometheus.yml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((ALERTING / "prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == ["rag-analytics-exporter"]


def test_no_zscore_alert_reaches_the_pager(amtool):
    """Every alert on yesterday's z-scores, whatever its severity and side, opens a ticket: it scores a day that
    has ended, and fires when the ETL closes the day, at night (alertmanager.yml, docs/runbooks.md)."""
    zscore = [rule for rule in alert_rules() if "_zscore" in rule["expr"]]
    assert {rule["alert"] for rule in zscore} == {"RagComponentLatencyAnomaly", "RagComponentLatencyLowAnomaly",
                                                  "RagModelTokenUsageAnomaly", "RagModelTokenUsageLowAnomaly"}
    for rule in zscore:
        labels = {"alertname": rule["alert"], **rule["labels"], "component": "total", "environment": "production"}
        result = route(amtool, "ticket", labels)
        assert result.returncode == 0, f"{labels}: {result.stdout}{result.stderr}"

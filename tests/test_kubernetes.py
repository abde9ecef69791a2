"""deploy/kubernetes without a cluster: renders, validates against the real schemas, matches its sources.

Each check is shown failing on a deliberately broken copy, so that none of them can pass by
checking nothing. Core objects: kubernetes-validate's strict schemas for Kubernetes 1.32 (the
kubectl here). ServiceMonitor and PrometheusRule: cloudcoil's pydantic models, generated from
the Prometheus Operator's CRDs, plus a check that no field was dropped as unknown.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from conftest import REPO, require_binary
from mixin.__main__ import out_of_date, outputs
from mixin.config import CONFIG
from mixin.kubernetes import prometheus_rule

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ["base", "examples/minimal", "examples/production"]
KUBERNETES_VERSION = "1.32.0"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def kubectl() -> str:
    return require_binary("kubectl", "kubectl (with kustomize) comes with this kind of machine; elsewhere install "
                                     "it from your distribution or the Kubernetes release")


def kustomize(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay: kustomize(KUBERNETES / overlay) for overlay in OVERLAYS}


def validate_core(documents: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess:
    core = [doc for doc in documents if doc["kind"] not in OPERATOR_KINDS]
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump_all(core))
    # The command beside this interpreter: the project's own, from its test extras.
    return subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k",
                           KUBERNETES_VERSION, "--quiet", str(path)], capture_output=True, text=True, timeout=120)


def dropped_fields(given: Any, kept: Any, where: str = "") -> list[str]:
    """Keys of `given` that the model did not keep: fields the CRD does not have."""
    problems = []
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        for key, value in given.items():
            problems += [f"{where}.{key}"] if key not in kept else dropped_fields(value, kept[key], f"{where}.{key}")
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (item, kept_item) in enumerate(zip(given, kept, strict=False)):
            problems += dropped_fields(item, kept_item, f"{where}[{i}]")
    return problems


def validate_operator(document: dict[str, Any]) -> None:
    """Raise ValueError or pydantic.ValidationError if the object does not fit its CRD."""
    from cloudcoil.models.prometheus_operator import v1

    model = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}[document["kind"]]
    parsed = model.model_validate(document)
    dropped = dropped_fields(document, parsed.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    if dropped:
        raise ValueError(f"fields the CRD does not have: {dropped}")


def check_rules(document: dict[str, Any], tmp_path: Path, promtool: str) -> subprocess.CompletedProcess:
    path = tmp_path / "groups.yml"
    path.write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}))
    return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


@pytest.mark.unit
def test_generated_files_equal_what_the_generator_writes():
    files = outputs()
    for path in (KUBERNETES / "base" / "prometheusrule.yaml", KUBERNETES / "base" / "dashboards.yaml"):
        assert path.read_text() == files[path], f"{path.relative_to(REPO)} is stale: run python -m mixin"


def test_every_overlay_renders_the_expected_objects(rendered):
    for overlay, documents in rendered.items():
        kinds = sorted(doc["kind"] for doc in documents)
        assert kinds.count("ConfigMap") >= 8, overlay  # config + seven dashboards
        for kind in ("Deployment", "Service", "ServiceMonitor", "PrometheusRule", "PodDisruptionBudget",
                     "NetworkPolicy"):
            assert kinds.count(kind) == 1, (overlay, kind)


def test_core_objects_validate_strictly(rendered, tmp_path):
    for overlay, documents in rendered.items():
        result = validate_core(documents, tmp_path)
        assert result.returncode == 0, f"{overlay}:\n{result.stdout}\n{result.stderr}"


def test_operator_objects_validate_against_the_crds(rendered):
    for documents in rendered.values():
        for document in documents:
            if document["kind"] in OPERATOR_KINDS:
                validate_operator(document)


def test_the_prometheusrule_passes_promtool(rendered, tmp_path, promtool):
    rule = of_kind(rendered["base"], "PrometheusRule")[0]
    result = check_rules(rule, tmp_path, promtool)
    assert result.returncode == 0, result.stdout + result.stderr
    committed = sum(len(yaml.safe_load(p.read_text())["groups"]) for p in (REPO / "alerting" / "rules").glob("*.yml"))
    assert len(rule["spec"]["groups"]) == committed


def test_the_pod_is_locked_down_and_probed_as_documented(rendered):
    for overlay, documents in rendered.items():
        pod = of_kind(documents, "Deployment")[0]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}}
        assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
        assert container["resources"]["limits"]["memory"] == "128Mi"
        env = {e["name"]: e["value"] for e in container["env"]}
        mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert env["RAG_EXPORTER_DATABASE_PASSWORD_FILE"].startswith(mounted["db"]), overlay
    production = of_kind(rendered["examples/production"], "Deployment")[0]["spec"]
    assert production["replicas"] == 2
    assert production["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "--web.config.file" in production["template"]["spec"]["containers"][0]["args"]
    web = next(v for v in production["template"]["spec"]["volumes"] if v["name"] == "web")
    assert web["secret"]["secretName"].startswith("rag-analytics-exporter-web-"), "the web config is a Secret"
    endpoint = of_kind(rendered["examples/production"], "ServiceMonitor")[0]["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"]["secret"]["name"] == "rag-analytics-exporter-tls"


def test_every_series_carries_the_deployment_labels(rendered):
    """The ServiceMonitor copies the deployment labels (mixin/config.py) from the Service, and each example
    overlay sets them there, so the rules and dashboards can tell its deployment from others."""
    for overlay, documents in rendered.items():
        monitor = of_kind(documents, "ServiceMonitor")[0]
        assert monitor["spec"]["targetLabels"] == list(CONFIG.deployment_labels), overlay
        if overlay != "base":
            labels = of_kind(documents, "Service")[0]["metadata"]["labels"]
            assert all(labels.get(name) for name in CONFIG.deployment_labels), (overlay, labels)
            selector = of_kind(documents, "Service")[0]["spec"]["selector"]
            assert not set(CONFIG.deployment_labels) & set(selector), "the labels must not change what is selected"


# Each check, on a broken copy: it must fail.

def test_kustomize_fails_on_a_missing_resource(tmp_path):
    copy_dir = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy_dir)
    (copy_dir / "base" / "service.yaml").unlink()
    result = subprocess.run([kubectl(), "kustomize", str(copy_dir / "examples" / "minimal")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "service.yaml" in result.stderr


def test_strict_validation_fails_on_an_unknown_field(rendered, tmp_path):
    documents = copy.deepcopy(rendered["base"])
    of_kind(documents, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    result = validate_core(documents, tmp_path)
    assert result.returncode != 0, result.stdout


def test_crd_validation_fails_on_a_malformed_interval_and_an_unknown_field(rendered):
    monitor = copy.deepcopy(of_kind(rendered["base"], "ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    with pytest.raises(pydantic.ValidationError, match="interval"):
        validate_operator(monitor)
    rule = copy.deepcopy(of_kind(rendered["base"], "PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["fire_after"] = "15m"
    with pytest.raises(ValueError, match="fire_after"):
        validate_operator(rule)


def test_promtool_fails_on_a_broken_expression(rendered, tmp_path, promtool):
    rule = copy.deepcopy(of_kind(rendered["base"], "PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["expr"] = "rate(rag_component_latency_zscore"
    assert check_rules(rule, tmp_path, promtool).returncode != 0


@pytest.mark.unit
def test_the_mixin_check_covers_the_kubernetes_objects():
    """`python -m mixin --check` once returned before the Kubernetes step, so only this file's tests saw drift."""
    files = outputs()
    assert out_of_date(files) == []
    for path in (KUBERNETES / "base" / "prometheusrule.yaml", KUBERNETES / "base" / "dashboards.yaml"):
        assert out_of_date(files | {path: files[path] + "# edited\n"}) == [path]


@pytest.mark.unit
def test_the_drift_check_fails_when_a_source_changes():
    rules = {path.name: path.read_text() for path in (REPO / "alerting" / "rules").glob("*.yml")}
    assert prometheus_rule(rules) == (KUBERNETES / "base" / "prometheusrule.yaml").read_text()
    rules["cost.yml"] = rules["cost.yml"].replace("for: ", "for: 1", 1)
    assert prometheus_rule(rules) != (KUBERNETES / "base" / "prometheusrule.yaml").read_text()

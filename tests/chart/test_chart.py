"""The Helm chart: lint, render with default and non-default values, validate every object
against the Kubernetes 1.33 schema, enforce the operator Deployment's hardening, and reject
bad values through values.schema.json."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from .helm import CHART, RELEASE_NAMESPACE, ROOT, by_kind, helm, one, set_args, template

K8S_VERSION = "1.33"
NON_DEFAULT = {
    "watchNamespace": "ml",
    "metrics.serviceMonitor.enabled": "true",
    "metrics.serviceMonitor.labels.release": "prometheus",
    "image.repository": "registry.example.com/team/rft-operator",
    "image.tag": "0.1.0-dev",
    "image.pullPolicy": "Always",
    "resources.requests.cpu": "250m",
    "resources.requests.memory": "300Mi",
    "resources.limits.memory": "1Gi",
    "timerInterval": "30",
    "verbose": "true",
}


def validate_all(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            check_service_monitor(obj)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:  # name the object in the failure
            raise AssertionError(f"{obj['kind']}/{obj['metadata']['name']}: {error}") from error


def check_service_monitor(obj: dict[str, Any]) -> None:
    """No schema for this CRD kind in kubernetes-validate: check its shape by hand."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert obj["metadata"]["namespace"] == RELEASE_NAMESPACE
    spec = obj["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    for key in ("interval", "scrapeTimeout"):
        assert isinstance(endpoint[key], str) and endpoint[key][-1] in "smh", endpoint


def test_crd_in_chart_is_the_generated_crd_byte_for_byte() -> None:
    source = ROOT / "crds" / "rftruns.rft.dev.yaml"
    copy = CHART / "crds" / "rftruns.rft.dev.yaml"
    assert copy.read_bytes() == source.read_bytes(), (
        f"{copy} differs from {source}: copy it again "
        "(cp crds/rftruns.rft.dev.yaml charts/rft-operator/crds/)"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["rftruns.rft.dev.yaml"]


def test_helm_lint_strict_passes_with_default_and_non_default_values() -> None:
    for values in ({}, NON_DEFAULT):
        result = helm("lint", "--strict", str(CHART), *set_args(values))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_default_render_is_valid_and_cluster_wide() -> None:
    objects = template(include_crds=True)
    validate_all(objects)
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    crd = one(objects, "CustomResourceDefinition")
    assert crd == yaml.safe_load((ROOT / "crds" / "rftruns.rft.dev.yaml").read_text())
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/rft-dev/rft-operator:0.1.0"  # appVersion
    assert container["args"][0] == "--all-namespaces"
    assert "RFT_WATCH_NAMESPACE" not in {e["name"] for e in container["env"]}
    binding = one(objects, "ClusterRoleBinding")
    account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "rft-system"}
    ]


def test_deployment_is_hardened_and_probed() -> None:
    for values in ({}, NON_DEFAULT):
        deployment = one(template(values), "Deployment")
        spec = deployment["spec"]
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": 8080, "health": 8081}
        assert "--metrics-port=8080" in container["args"]
        assert "--liveness-port=8081" in container["args"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["resources"]["limits"]["memory"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_non_default_render_is_valid_and_namespaced() -> None:
    objects = template(NON_DEFAULT, include_crds=True)
    validate_all(objects)
    # one namespace: a Role there and nothing cluster-wide (the operator scans nothing)
    assert {obj["kind"] for obj in objects} == {
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/team/rft-operator:0.1.0-dev"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"] == [
        "--namespace=ml",
        "--metrics-port=8080",
        "--liveness-port=8081",
        "--verbose",
    ]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "300Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert {"name": "RFT_TIMER_INTERVAL", "value": "30"} in container["env"]
    assert {"name": "RFT_WATCH_NAMESPACE", "value": "ml"} in container["env"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    assert one(objects, "Role")["metadata"]["namespace"] == "ml"


def test_service_selector_matches_the_operator_pod() -> None:
    objects = template()
    selector = one(objects, "Service")["spec"]["selector"]
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert selector == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]


def test_optional_objects_can_be_turned_off() -> None:
    objects = template({"rbac.create": "false", "serviceAccount.create": "false"})
    validate_all(objects)
    assert {obj["kind"] for obj in objects} == {"Deployment", "Service"}
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"
    assert not by_kind(template({"metrics.service.enabled": "false"}), "Service")


def test_notes_tell_what_to_apply_next() -> None:
    result = helm(
        "install", "rft", str(CHART), "--dry-run=client", "--namespace", RELEASE_NAMESPACE
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply -f examples/arith-smollm2.yaml" in notes
    assert "spec.runtime.image" in notes and "kubectl get rft" in notes


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"watchNamespace": "Not_A_Namespace"}, "/watchNamespace"),
        ({"image.pullPolicy": "Sometimes"}, "/image/pullPolicy"),
        ({"image.repository": ""}, "/image/repository"),
        ({"metrics.port": "70000"}, "/metrics/port"),
        ({"liveness.port": "0"}, "/liveness/port"),
        ({"timerInterval": "0"}, "/timerInterval"),
        ({"resources.limits.memory": "lots"}, "/resources/limits/memory"),
        ({"metrics.serviceMonitor.interval": "often"}, "/metrics/serviceMonitor/interval"),
        ({"replicaCount": "2"}, "replicaCount"),  # unknown value: typo or unsupported
        ({"verbose!": "yes"}, "/verbose"),
    ],
)
def test_bad_values_fail_with_the_field_named(values: dict[str, str], field: str) -> None:
    result = helm("template", "rft", str(CHART), *set_args(values))
    assert result.returncode != 0, f"helm accepted {values}"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr


def test_service_monitor_without_metrics_service_fails_clearly() -> None:
    values = {"metrics.serviceMonitor.enabled": "true", "metrics.service.enabled": "false"}
    result = helm("template", "rft", str(CHART), *set_args(values))
    assert result.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in result.stderr

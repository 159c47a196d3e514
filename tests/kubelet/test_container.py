"""How a pod's container becomes a local process: Kubernetes env rules, and the mapping of
mounts, Service names and the pod address onto this machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rft_operator.kubelet import ContainerConfigError, Node, container_launch
from rft_operator.kubelet.container import expand, rewriter
from rft_operator.kubelet.objects import dns

INDEX = "batch.kubernetes.io/job-completion-index"


def pod(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "job-0-abcde",
            "namespace": "ml",
            "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
        },
        "spec": {"containers": [container], "volumes": volumes or []},
        "status": {"podIP": "127.100.0.7"},
    }


def node(tmp_path: Path, **kw: Any) -> Node:
    return Node(claims={"runs": str(tmp_path / "runs")}, pods_dir=tmp_path / "pods", **kw)


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "x"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-x-$(C)-$(A)"


def test_env_values_field_refs_and_secrets(tmp_path: Path) -> None:
    container = {
        "command": ["python", "--rank=$(RANK)", "--key=$(KEY)"],
        "env": [
            {"name": "BASE", "value": "v"},
            {"name": "DERIVED", "value": "$(BASE)/sub"},
            {
                "name": "RANK",
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}},
            },
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
    }
    secrets = {("s", "k"): "hunter2"}
    launch = container_launch(
        pod(container), node(tmp_path, secrets=lambda n, k: secrets.get((n, k))), {}, "/venv/bin"
    )
    assert launch.argv == ["python", "--rank=3", "--key=hunter2"]
    assert launch.env["DERIVED"] == "v/sub" and launch.env["IP"] == "127.100.0.7"
    assert launch.env["PATH"].startswith("/venv/bin:")


def test_missing_secret_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    container = {
        "command": ["true"],
        "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "judge", "key": "token"}}}],
    }
    with pytest.raises(ContainerConfigError, match=r"secret 'judge' has no key 'token'.*--secrets"):
        container_launch(pod(container), node(tmp_path), {}, "/b")


def test_unbound_claim_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    container = {"command": ["true"], "volumeMounts": [{"name": "d", "mountPath": "/mnt/data"}]}
    volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    with pytest.raises(ContainerConfigError, match="--pvc data=DIR"):
        container_launch(pod(container, volumes), node(tmp_path), {}, "/b")


def test_mounts_services_and_wildcard_address_are_mapped(tmp_path: Path) -> None:
    config = {
        "output": "/mnt/rft/run/it-0",
        "home": "/tmp",
        "other": "/mnt/rft2/x",
        "url": "http://run-it0-sampler.ml.svc:8000/v1",
        "host": "0.0.0.0",
        "rendezvous": "127.0.0.1:29500",
    }
    container = {
        "command": ["serve", "--log=/dev/termination-log", "--scratch=/tmp/x"],
        "env": [{"name": "CONFIG", "value": json.dumps(config)}],
        "volumeMounts": [
            {"name": "storage", "mountPath": "/mnt/rft"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes = [
        {"name": "storage", "persistentVolumeClaim": {"claimName": "runs"}},
        {"name": "tmp", "emptyDir": {}},
    ]
    hosts = {
        "run-it0-sampler.ml.svc": "127.100.0.9",
        "run-it0-sampler.ml.svc:8000": "127.100.0.9:8000",
    }
    launch = container_launch(pod(container, volumes), node(tmp_path), hosts, "/b")
    mapped = json.loads(launch.env["CONFIG"])
    tmp = tmp_path / "pods" / "job-0-abcde" / "volumes" / "tmp"
    assert mapped == {
        "output": f"{tmp_path}/runs/run/it-0",
        "home": str(tmp),
        "other": "/mnt/rft2/x",  # not below the mount
        "url": "http://127.100.0.9:8000/v1",
        "host": "127.100.0.7",  # the pod's own address
        "rendezvous": "127.100.0.7:29500",  # its loopback too: pods never share a port
    }
    assert launch.in_container(f'{{"checkpoint": "{tmp_path}/runs/run/it-0/checkpoint"}}') == (
        '{"checkpoint": "/mnt/rft/run/it-0/checkpoint"}'
    )
    assert launch.argv[1] == f"--log={launch.termination}"
    assert launch.argv[2] == f"--scratch={tmp}/x"
    assert launch.termination.exists() and launch.termination.read_text() == ""


def test_rewriting_is_one_pass() -> None:
    """A mapped value that contains another mount path is not mapped again."""
    rewrite = rewriter({"/mnt/rft": "/tmp/pytest/runs", "/tmp": "/srv/tmp"}, {})
    assert rewrite("/mnt/rft/a /tmp/b") == "/tmp/pytest/runs/a /srv/tmp/b"


def test_dns_names_point_at_pods_and_container_ports() -> None:
    sampler = {
        "metadata": {"name": "s-abc", "namespace": "ml", "labels": {"app": "s"}},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8000}]}]},
        "status": {"phase": "Running", "podIP": "127.100.1.1"},
    }
    trainer = {
        "metadata": {"name": "t-0-xyz", "namespace": "ml", "labels": {}},
        "spec": {"hostname": "t-0", "subdomain": "t", "containers": [{}]},
        "status": {"phase": "Pending", "podIP": "127.100.1.2"},
    }
    services = [
        {
            "metadata": {"name": "s", "namespace": "ml"},
            "spec": {"selector": {"app": "s"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
        {"metadata": {"name": "t", "namespace": "ml"}, "spec": {"clusterIP": "None"}},
    ]
    names = dns(services, [sampler, trainer])
    assert names["s.ml.svc:80"] == "127.100.1.1:8000"
    assert names["s.ml.svc.cluster.local"] == "127.100.1.1"
    assert names["t-0.t.ml.svc"] == "127.100.1.2"

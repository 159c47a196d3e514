"""The pod every child runs: its container (the job config in an environment variable,
the termination log, non-root, no privilege), volumes (the run storage and the read-only
input claims), resources and scheduling. `manifests` wraps it in Deployments and Jobs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rft_runtime.config.env import (
    CONFIG_ENV,
    METRICS_HOST_ENV,
    METRICS_PORT_ENV,
    TERMINATION_LOG_ENV,
)
from rft_runtime.config.live import METRICS_PORT, METRICS_PORT_NAME
from rft_runtime.config.paths import HF_HOME, PVC_MOUNT_ROOT, STORAGE_MOUNT, TERMINATION_LOG

from . import api
from .api.sections import ResourceRequirements
from .layout import claims_used

RUN_AS_USER = 1000
CONFIG_ARG = f"env:{CONFIG_ENV}"


def resources(requirements: ResourceRequirements | None, gpus: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requirements is not None:
        if requirements.requests:
            out["requests"] = {k: str(v) for k, v in requirements.requests.items()}
        if requirements.limits:
            out["limits"] = {k: str(v) for k, v in requirements.limits.items()}
    if gpus > 0:
        out.setdefault("limits", {}).setdefault("nvidia.com/gpu", str(gpus))
    return out


def volumes(spec: api.RFTRunSpec, shm: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "run-storage", "persistentVolumeClaim": {"claimName": spec.storage.pvc}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "run-storage", "mountPath": STORAGE_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for index, claim in enumerate(claims_used(spec)):
        volumes.append(
            {
                "name": f"input-{index}",
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
        )
        mounts.append(
            {"name": f"input-{index}", "mountPath": f"{PVC_MOUNT_ROOT}/{claim}", "readOnly": True}
        )
    if shm:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def job_env(config: BaseModel, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [
        {"name": CONFIG_ENV, "value": config.model_dump_json(by_alias=True)},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},  # weights come from the volumes, never a hub
        {"name": "HF_HOME", "value": HF_HOME},
        {"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *(extra or []),
    ]


def container(
    spec: api.RFTRunSpec,
    name: str,
    command: list[str],
    env: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    resources: dict[str, Any],
) -> dict[str, Any]:
    return {
        "name": name,
        "image": spec.runtime.image,
        "imagePullPolicy": spec.runtime.image_pull_policy,
        "command": command,
        "env": env,
        "volumeMounts": mounts,
        "resources": resources,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }


def with_metrics(container: dict[str, Any]) -> dict[str, Any]:
    """A job's container serving its progress gauges (rft_runtime.live) on the metrics port,
    for a PodMonitor (the chart's) to scrape."""
    return {
        **container,
        "env": [
            *container["env"],
            {"name": METRICS_HOST_ENV, "value": "0.0.0.0"},
            {"name": METRICS_PORT_ENV, "value": str(METRICS_PORT)},
        ],
        "ports": [
            *container.get("ports", []),
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT},
        ],
    }


def pod_spec(
    spec: api.RFTRunSpec,
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    restart_policy: str,
) -> dict[str, Any]:
    runtime = spec.runtime
    pod: dict[str, Any] = {
        "restartPolicy": restart_policy,
        "containers": containers,
        "volumes": volumes,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,  # runtime pods never call the API server
    }
    if runtime.runtime_class_name:
        pod["runtimeClassName"] = runtime.runtime_class_name
    if runtime.node_selector:
        pod["nodeSelector"] = dict(runtime.node_selector)
    if runtime.tolerations:
        pod["tolerations"] = [t.to_wire() for t in runtime.tolerations]
    if runtime.priority_class_name:
        pod["priorityClassName"] = runtime.priority_class_name
    if runtime.service_account_name:
        pod["serviceAccountName"] = runtime.service_account_name
    if runtime.image_pull_secrets:
        pod["imagePullSecrets"] = [s.to_wire() for s in runtime.image_pull_secrets]
    return pod


def sandbox_security(spec: api.RFTRunSpec) -> dict[str, Any]:
    """What bubblewrap needs in the scoring container (see docs/rewards.md)."""
    sandbox = spec.runtime.sandbox
    seccomp: dict[str, Any] = {"type": sandbox.seccomp_profile}
    if sandbox.localhost_profile:
        seccomp["localhostProfile"] = sandbox.localhost_profile
    return {"seccompProfile": seccomp, "appArmorProfile": {"type": sandbox.app_armor_profile}}

"""Pure builders of the Kubernetes objects of one run: plain dicts, deterministic names.

Every object is owned by its RFTRun (deleting the run deletes them; the stored artifacts on
the PVC stay), labelled for selection, scheduled as the spec says, and runs non-root. Job
configs travel as JSON in an environment variable; secrets only via secretKeyRef.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from rft_runtime.commands import score_command, serve_command, train_command
from rft_runtime.config.jobs import (
    CONFIG_ENV,
    OPS_CACHE,
    OPS_CACHE_ENV,
    POD_EXTENSIONS_DIR,
    PVC_MOUNT_ROOT,
    SAMPLER_CACHE_ENV,
    SAMPLER_PORT,
    STORAGE_MOUNT,
    TRAIN_MASTER_PORT,
    ScoreJobConfig,
    ServeConfig,
    TrainJobConfig,
    judge_key_env,
)
from rft_runtime.config.spec import SANDBOXED_TYPES, ResourceRequirements

from . import api
from .jobconfigs import TEACHER_KEY_ENV
from .layout import claims_used
from .names import sampler_name, score_name, train_name

MANAGER = "rft-operator"
RUN_LABEL = "rft.dev/run"
ITERATION_LABEL = "rft.dev/iteration"
STAGE_LABEL = "rft.dev/stage"
COMPONENT_LABEL = "app.kubernetes.io/component"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
HELD_ANNOTATION = "rft.dev/held"  # the operator suspended this Job (spec.suspend), not a queue
RUN_AS_USER = 1000
CONFIG_ARG = f"env:{CONFIG_ENV}"


@dataclass(frozen=True)
class RunRef:
    """Identity of the owning RFTRun."""

    name: str
    namespace: str
    uid: str


def owner_reference(run: RunRef) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "name": run.name,
        "uid": run.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(run: RunRef, index: int, component: str, stage: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "rft",
        "app.kubernetes.io/instance": run.name,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/managed-by": MANAGER,
        RUN_LABEL: run.name,
        ITERATION_LABEL: str(index),
        STAGE_LABEL: stage,
    }


def metadata(run: RunRef, name: str, object_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": run.namespace,
        "labels": object_labels,
        "ownerReferences": [owner_reference(run)],
    }


def _resources(requirements: ResourceRequirements | None, gpus: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if requirements is not None:
        if requirements.requests:
            out["requests"] = {k: str(v) for k, v in requirements.requests.items()}
        if requirements.limits:
            out["limits"] = {k: str(v) for k, v in requirements.limits.items()}
    if gpus > 0:
        out.setdefault("limits", {}).setdefault("nvidia.com/gpu", str(gpus))
    return out


def _volumes(spec: api.RFTRunSpec, shm: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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


def _env(config: BaseModel, extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [
        {"name": CONFIG_ENV, "value": config.model_dump_json(by_alias=True)},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},  # weights come from the volumes, never a hub
        {"name": "HF_HOME", "value": f"{STORAGE_MOUNT}/.cache/huggingface"},
        {"name": "RFT_TERMINATION_LOG", "value": "/dev/termination-log"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *(extra or []),
    ]


def _container(
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


def _pod_spec(
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


def _queue_labels(spec: api.RFTRunSpec) -> dict[str, str]:
    return {KUEUE_QUEUE_LABEL: spec.runtime.queue_name} if spec.runtime.queue_name else {}


def build_sampler_deployment(
    run: RunRef, spec: api.RFTRunSpec, index: int, config: ServeConfig
) -> dict[str, Any]:
    """vLLM's OpenAI server for policy `index`; probes on /health (loading takes minutes)."""
    name = sampler_name(run.name, index)
    object_labels = labels(run, index, "sampler", "sampling")
    volumes, mounts = _volumes(spec, shm=True)
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
    container = _container(
        spec,
        "sampler",
        serve_command(CONFIG_ARG),
        _env(config, [{"name": k, "value": v} for k, v in SAMPLER_CACHE_ENV.items()]),
        mounts,
        _resources(spec.sampler.resources, spec.sampler.gpus_per_replica),
    )
    container["ports"] = [{"name": "http", "containerPort": SAMPLER_PORT, "protocol": "TCP"}]
    container["startupProbe"] = {**probe, "failureThreshold": 90, "timeoutSeconds": 5}
    container["readinessProbe"] = {**probe, "failureThreshold": 3, "timeoutSeconds": 5}
    container["livenessProbe"] = {**probe, "failureThreshold": 6, "timeoutSeconds": 10}
    pod_labels = {**object_labels, **_queue_labels(spec)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(run, name, pod_labels),
        "spec": {
            "replicas": spec.sampler.replicas,
            "selector": {
                "matchLabels": {
                    RUN_LABEL: run.name,
                    ITERATION_LABEL: str(index),
                    COMPONENT_LABEL: "sampler",
                }
            },
            "progressDeadlineSeconds": 1800,
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": pod_labels},
                # nothing to save on the way out: a sampler need not be waited for long
                "spec": {
                    **_pod_spec(spec, [container], volumes, "Always"),
                    "terminationGracePeriodSeconds": 10,
                },
            },
        },
    }


def build_sampler_service(run: RunRef, index: int) -> dict[str, Any]:
    name = sampler_name(run.name, index)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, name, labels(run, index, "sampler", "sampling")),
        "spec": {
            "type": "ClusterIP",
            "selector": {
                RUN_LABEL: run.name,
                ITERATION_LABEL: str(index),
                COMPONENT_LABEL: "sampler",
            },
            "ports": [
                {"name": "http", "port": SAMPLER_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def build_score_job(
    run: RunRef, spec: api.RFTRunSpec, index: int, config: ScoreJobConfig
) -> dict[str, Any]:
    """One pod; restarts resume from what it already wrote (so a few retries are cheap)."""
    name = score_name(run.name, index)
    object_labels = {**labels(run, index, "score", "scoring"), **_queue_labels(spec)}
    volumes, mounts = _volumes(spec, shm=False)
    extra = []
    teacher = spec.sampler.teacher
    if config.teacher is not None and teacher is not None and teacher.api_key_secret_ref:
        ref = teacher.api_key_secret_ref
        extra.append(
            {
                "name": TEACHER_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    for reward in spec.rewards:
        judge = reward.judge
        if judge is not None and judge.api_key_secret_ref is not None:
            ref = judge.api_key_secret_ref
            extra.append(
                {
                    "name": judge_key_env(reward.name),
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                }
            )
    container = _container(
        spec,
        "score",
        score_command(CONFIG_ARG),
        _env(config, extra),
        mounts,
        _resources(spec.runtime.resources, 0),
    )
    if SANDBOXED_TYPES.intersection(r.type for r in spec.rewards):
        container["securityContext"].update(_sandbox_security(spec))
    return _job(run, spec, name, object_labels, [container], volumes, backoff_limit=3)


def _sandbox_security(spec: api.RFTRunSpec) -> dict[str, Any]:
    """What bubblewrap needs in the scoring container (see docs/rewards.md)."""
    sandbox = spec.runtime.sandbox
    seccomp: dict[str, Any] = {"type": sandbox.seccomp_profile}
    if sandbox.localhost_profile:
        seccomp["localhostProfile"] = sandbox.localhost_profile
    return {"seccompProfile": seccomp, "appArmorProfile": {"type": sandbox.app_armor_profile}}


def build_train_job(
    run: RunRef, spec: api.RFTRunSpec, index: int, config: TrainJobConfig
) -> dict[str, Any]:
    """An Indexed Job: pod i is node i of the DeepSpeed world, pod 0 is the master."""
    name = train_name(run.name, index)
    nodes = spec.training.nodes
    object_labels = {**labels(run, index, "train", "training"), **_queue_labels(spec)}
    volumes, mounts = _volumes(spec, shm=True)
    command = train_command(
        CONFIG_ARG,
        nodes=nodes,
        gpus_per_node=spec.training.gpus_per_node,
        node_rank="$(JOB_COMPLETION_INDEX)",
        master_addr=f"{name}-0.{name}.{run.namespace}.svc",
        master_port=TRAIN_MASTER_PORT,
    )
    index_env = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {
            "fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            }
        },
    }
    ops_env = [
        {"name": "TORCH_EXTENSIONS_DIR", "value": POD_EXTENSIONS_DIR},
        {"name": OPS_CACHE_ENV, "value": OPS_CACHE},
    ]
    container = _container(
        spec,
        "train",
        command,
        [index_env, *_env(config, ops_env)],
        mounts,
        _resources(spec.training.resources, spec.training.gpus_per_node),
    )
    container["ports"] = [{"name": "rendezvous", "containerPort": TRAIN_MASTER_PORT}]
    job = _job(run, spec, name, object_labels, [container], volumes, backoff_limit=2)
    job["spec"].update({"completionMode": "Indexed", "completions": nodes, "parallelism": nodes})
    job["spec"]["template"]["spec"]["subdomain"] = name
    return job


def build_train_service(run: RunRef, index: int) -> dict[str, Any]:
    """Headless Service giving the training pods stable DNS names (<job>-<i>.<job>)."""
    name = train_name(run.name, index)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(run, name, labels(run, index, "train", "training")),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"batch.kubernetes.io/job-name": name},
            "ports": [{"name": "rendezvous", "port": TRAIN_MASTER_PORT}],
        },
    }


def _job(
    run: RunRef,
    spec: api.RFTRunSpec,
    name: str,
    object_labels: dict[str, str],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    backoff_limit: int,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(run, name, object_labels),
        "spec": {
            "backoffLimit": backoff_limit,
            # A queue (Kueue) admits a Job by un-suspending it; without one it starts now.
            "suspend": spec.runtime.queue_name is not None,
            "template": {
                "metadata": {"labels": object_labels},
                "spec": _pod_spec(spec, containers, volumes, "Never"),
            },
        },
    }

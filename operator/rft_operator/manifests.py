"""Pure builders of the Kubernetes objects of one run: plain dicts, deterministic names.

Every object is owned by its RFTRun (deleting the run deletes them; the stored artifacts on
the PVC stay), labelled for selection, scheduled as the spec says, and runs non-root. Job
configs travel as JSON in an environment variable; secrets only via secretKeyRef.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rft_runtime.commands import score_command, serve_command, train_command
from rft_runtime.config.env import (
    OPS_CACHE_ENV,
    POD_NAME_ENV,
    SAMPLER_CACHE_ENV,
    TEACHER_API_KEY_ENV,
    TORCH_EXTENSIONS_ENV,
    judge_api_key_env,
)
from rft_runtime.config.jobs import ScoreJobConfig, ServeConfig, TrainJobConfig
from rft_runtime.config.paths import (
    OPS_CACHE,
    POD_EXTENSIONS_DIR,
    SAMPLER_PORT,
    TRAIN_MASTER_PORT,
)
from rft_runtime.config.spec import SANDBOXED_TYPES

from . import api, pod
from .names import sampler_name, score_name, train_name

MANAGER = "rft-operator"
RUN_LABEL = "rft.dev/run"
ITERATION_LABEL = "rft.dev/iteration"
STAGE_LABEL = "rft.dev/stage"
COMPONENT_LABEL = "app.kubernetes.io/component"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
HELD_ANNOTATION = "rft.dev/held"  # the operator suspended this Job (spec.suspend), not a queue


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


def _queue_labels(spec: api.RFTRunSpec) -> dict[str, str]:
    return {KUEUE_QUEUE_LABEL: spec.runtime.queue_name} if spec.runtime.queue_name else {}


def build_sampler_deployment(
    run: RunRef, spec: api.RFTRunSpec, index: int, config: ServeConfig, name: str | None = None
) -> dict[str, Any]:
    """vLLM's OpenAI server starting on policy `index` (a long-lived one then loads the later
    policies in place); probes on /health (loading takes minutes)."""
    name = name or sampler_name(run.name, index)
    object_labels = labels(run, index, "sampler", "sampling")
    volumes, mounts = pod.volumes(spec, shm=True)
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
    container = pod.container(
        spec,
        "sampler",
        serve_command(pod.CONFIG_ARG),
        pod.job_env(
            config,
            [
                *({"name": k, "value": v} for k, v in SAMPLER_CACHE_ENV.items()),
                {"name": POD_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
        ),
        mounts,
        pod.resources(spec.sampler.resources, spec.sampler.gpus_per_replica),
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
                    **pod.pod_spec(spec, [container], volumes, "Always"),
                    "terminationGracePeriodSeconds": 10,
                },
            },
        },
    }


def build_sampler_service(run: RunRef, index: int, name: str | None = None) -> dict[str, Any]:
    name = name or sampler_name(run.name, index)
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


def reward_secrets(spec: api.RFTRunSpec) -> list[dict[str, Any]]:
    """The judges' API keys, for the pods that score (scoring Job; grpo training Job)."""
    found = []
    for reward in spec.rewards:
        judge = reward.judge
        if judge is not None and judge.api_key_secret_ref is not None:
            ref = judge.api_key_secret_ref
            found.append(
                {
                    "name": judge_api_key_env(reward.name),
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                }
            )
    return found


def build_score_job(
    run: RunRef, spec: api.RFTRunSpec, index: int, config: ScoreJobConfig
) -> dict[str, Any]:
    """One pod; restarts resume from what it already wrote (so a few retries are cheap)."""
    name = score_name(run.name, index)
    object_labels = {**labels(run, index, "score", "scoring"), **_queue_labels(spec)}
    volumes, mounts = pod.volumes(spec, shm=False)
    extra = []
    teacher = spec.sampler.teacher
    if config.teacher is not None and teacher is not None and teacher.api_key_secret_ref:
        ref = teacher.api_key_secret_ref
        extra.append(
            {
                "name": TEACHER_API_KEY_ENV,
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    extra += reward_secrets(spec)
    container = pod.container(
        spec,
        "score",
        score_command(pod.CONFIG_ARG),
        pod.job_env(config, extra),
        mounts,
        pod.resources(spec.runtime.resources, 0),
    )
    if SANDBOXED_TYPES.intersection(r.type for r in spec.rewards):
        container["securityContext"].update(pod.sandbox_security(spec))
    return _job(run, spec, name, object_labels, [container], volumes, backoff_limit=3)


def build_train_job(
    run: RunRef, spec: api.RFTRunSpec, index: int, config: TrainJobConfig
) -> dict[str, Any]:
    """An Indexed Job: pod i is node i of the DeepSpeed world, pod 0 is the master."""
    name = train_name(run.name, index)
    nodes = config.nodes
    object_labels = {**labels(run, index, "train", "training"), **_queue_labels(spec)}
    volumes, mounts = pod.volumes(spec, shm=True)
    command = train_command(
        pod.CONFIG_ARG,
        nodes=nodes,
        gpus_per_node=config.gpus_per_node,
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
        {"name": TORCH_EXTENSIONS_ENV, "value": POD_EXTENSIONS_DIR},
        {"name": OPS_CACHE_ENV, "value": OPS_CACHE},
    ]
    scores = config.grpo is not None  # grpo: the training pod runs the rewards itself
    container = pod.container(
        spec,
        "train",
        command,
        [index_env, *pod.job_env(config, ops_env + (reward_secrets(spec) if scores else []))],
        mounts,
        pod.resources(spec.training.resources, config.gpus_per_node),
    )
    if scores and SANDBOXED_TYPES.intersection(r.type for r in spec.rewards):
        container["securityContext"].update(pod.sandbox_security(spec))
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
                "spec": pod.pod_spec(
                    spec, [pod.with_metrics(c) for c in containers], volumes, "Never"
                ),
            },
        },
    }

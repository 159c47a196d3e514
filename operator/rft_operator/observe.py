"""Pure: turn the Deployments, Jobs and Pods of a run into the planner's `Child` records."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from rft_runtime.config.termination import failure_text, read_termination

from .actions import Child, ChildKind, Phase
from .manifests import COMPONENT_LABEL, HELD_ANNOTATION, ITERATION_LABEL, RUN_LABEL

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def deployment_phase(deployment: dict[str, Any]) -> tuple[Phase, str]:
    status = deployment.get("status") or {}
    progressing = _condition(deployment, "Progressing")
    if progressing and progressing.get("status") == "False":
        return "Failed", progressing.get("message") or progressing.get("reason", "")
    if (status.get("readyReplicas") or 0) >= 1:
        return "Ready", ""
    return "Pending", ""


def job_phase(job: dict[str, Any]) -> tuple[Phase, str]:
    for type_, phase in (("Complete", "Succeeded"), ("Failed", "Failed")):
        condition = _condition(job, type_)
        if condition and condition.get("status") == "True":
            return phase, condition.get("message") or condition.get("reason", "")  # type: ignore[return-value]
    if (job.get("spec") or {}).get("suspend"):
        return "Suspended", ""
    if (job.get("status") or {}).get("active"):
        return "Running", ""
    return "Pending", ""


def _termination(pod: dict[str, Any]) -> tuple[int | None, str | None]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated.get("exitCode"), terminated.get("message")
    return None, None


def job_summary(
    job_name: str, pods: Iterable[dict[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """(summary of the successful pod — index 0 for Indexed Jobs, failure text of a failed one)."""
    success: dict[str, Any] | None = None
    failure: str | None = None
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("creationTimestamp") or ""):
        if _labels(pod).get(JOB_NAME_LABEL, _labels(pod).get("job-name")) != job_name:
            continue
        index = (pod.get("metadata", {}).get("annotations") or {}).get(INDEX_ANNOTATION, "0")
        code, message = _termination(pod)
        if code == 0 and index == "0":
            success = read_termination(message) or success
        elif code not in (None, 0):
            raw = message or f"exit code {code}"
            failure = failure_text(read_termination(message), raw.strip()[-500:])
    return success, failure


FAILED_POD_GRACE_SECONDS = 30.0
"""How long a failed Job waits for its failed pod to reach the watch cache, so the run fails
with the pod's own message (pods and Jobs come on separate watch streams, and a Job's
event triggers a reconcile at once)."""


def _awaiting_failed_pod(job: dict[str, Any], now: datetime.datetime) -> bool:
    """Failed less than the grace ago (by its Failed condition's lastTransitionTime)."""
    since = (_condition(job, "Failed") or {}).get("lastTransitionTime")
    if not since:
        return False
    try:
        failed_at = datetime.datetime.fromisoformat(str(since).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (now - failed_at).total_seconds() < FAILED_POD_GRACE_SECONDS


def observe_children(
    run: str,
    deployments: Iterable[dict[str, Any]],
    jobs: Iterable[dict[str, Any]],
    pods: Iterable[dict[str, Any]],
    now: datetime.datetime | None = None,
) -> dict[str, Child]:
    """The run's children as the planner sees them. With `now`, a Job that failed moments
    ago whose failed pod is not in the cache yet still counts as running, until the pod
    (and its termination message) arrives or the grace is over."""
    pods = list(pods)
    children: dict[str, Child] = {}
    for deployment in deployments:
        labels = _labels(deployment)
        if labels.get(RUN_LABEL) != run or deployment.get("metadata", {}).get("deletionTimestamp"):
            continue
        phase, message = deployment_phase(deployment)
        name = deployment["metadata"]["name"]
        children[name] = Child(
            name, "sampler", int(labels[ITERATION_LABEL]), phase, message=message
        )
    for job in jobs:
        labels = _labels(job)
        if labels.get(RUN_LABEL) != run or job.get("metadata", {}).get("deletionTimestamp"):
            continue
        kind: ChildKind = "train" if labels.get(COMPONENT_LABEL) == "train" else "score"
        name = job["metadata"]["name"]
        phase, message = job_phase(job)
        summary, failure = job_summary(name, pods)
        if phase == "Failed" and failure:
            message = failure
        elif phase == "Failed" and now is not None and _awaiting_failed_pod(job, now):
            phase, message = "Running", "failed; waiting for its pod's termination message"
        annotations = job.get("metadata", {}).get("annotations") or {}
        children[name] = Child(
            name,
            kind,
            int(labels[ITERATION_LABEL]),
            phase,
            summary=summary if phase == "Succeeded" else None,
            message=message,
            held=annotations.get(HELD_ANNOTATION) == "true",
        )
    return children

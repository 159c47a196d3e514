"""Reading children: Deployment readiness, Job outcome, termination-message summaries."""

from __future__ import annotations

import datetime
import json
from typing import Any

from rft_operator.observe import (
    FAILED_POD_GRACE_SECONDS,
    deployment_phase,
    job_phase,
    job_summary,
    observe_children,
)

LABELS = {"rft.dev/run": "r", "rft.dev/iteration": "1", "app.kubernetes.io/component": "train"}


def pod(name: str, index: str, code: int | None, message: str | None) -> dict[str, Any]:
    state = (
        {"terminated": {"exitCode": code, "message": message}}
        if code is not None
        else {"running": {}}
    )
    return {
        "metadata": {
            "name": f"{name}-{index}-x",
            "labels": {**LABELS, "batch.kubernetes.io/job-name": name},
            "annotations": {"batch.kubernetes.io/job-completion-index": index},
            "creationTimestamp": f"2026-01-01T00:00:0{index}Z",
        },
        "status": {"containerStatuses": [{"state": state}]},
    }


def test_deployment_phases() -> None:
    assert deployment_phase({"status": {}})[0] == "Pending"
    assert deployment_phase({"status": {"readyReplicas": 1}})[0] == "Ready"
    failed = {
        "status": {
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "image pull back-off",
                }
            ]
        }
    }
    assert deployment_phase(failed) == ("Failed", "image pull back-off")


def test_job_phases() -> None:
    assert job_phase({"spec": {}, "status": {}})[0] == "Pending"
    assert job_phase({"spec": {}, "status": {"active": 1}})[0] == "Running"
    assert job_phase({"spec": {"suspend": True}, "status": {}})[0] == "Suspended"
    done = {"spec": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_phase(done)[0] == "Succeeded"
    failed = {
        "spec": {},
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        },
    }
    assert job_phase(failed) == ("Failed", "Job has reached the specified backoff limit")


def test_summary_comes_from_the_index_zero_pod() -> None:
    pods = [
        pod("r-it1-train", "1", 0, json.dumps({"kind": "train", "iteration": 9})),
        pod("r-it1-train", "0", 0, json.dumps({"kind": "train", "iteration": 1})),
    ]
    summary, failure = job_summary("r-it1-train", pods)
    assert summary == {"kind": "train", "iteration": 1} and failure is None


def test_failure_text_prefers_the_structured_message() -> None:
    structured = json.dumps(
        {
            "kind": "error",
            "reason": "EmptyDataset",
            "message": "no kept samples; lower filter.minReward",
        }
    )
    _, failure = job_summary("r-it1-train", [pod("r-it1-train", "0", 1, structured)])
    assert failure == "EmptyDataset: no kept samples; lower filter.minReward"
    _, failure = job_summary("r-it1-train", [pod("r-it1-train", "0", 137, "Killed\n")])
    assert failure == "Killed"
    _, failure = job_summary("r-it1-train", [pod("r-it1-train", "0", 2, None)])
    assert failure == "exit code 2"


def test_observe_children_uses_the_pod_message_for_failed_jobs() -> None:
    job = {
        "metadata": {"name": "r-it1-train", "labels": LABELS},
        "spec": {},
        "status": {"conditions": [{"type": "Failed", "status": "True", "message": "backoff"}]},
    }
    other_run = {
        "metadata": {"name": "q-it0-score", "labels": {**LABELS, "rft.dev/run": "q"}},
        "spec": {},
        "status": {},
    }
    children = observe_children(
        "r",
        [],
        [job, other_run],
        [
            pod(
                "r-it1-train",
                "0",
                1,
                json.dumps(
                    {"kind": "error", "reason": "OOM", "message": "lower training.batchSize"}
                ),
            )
        ],
    )
    assert list(children) == ["r-it1-train"]
    child = children["r-it1-train"]
    assert (child.kind, child.index, child.phase) == ("train", 1, "Failed")
    assert child.message == "OOM: lower training.batchSize"
    assert child.summary is None


def test_a_failed_job_waits_a_moment_for_its_pod_to_reach_the_cache() -> None:
    """Pods and Jobs come on separate watch streams: the Job's Failed event can arrive
    first. The run must fail with the pod's message, not the Job's 'backoff' line."""
    failed_at = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
    condition = {
        "type": "Failed",
        "status": "True",
        "message": "Job has reached the specified backoff limit",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
    }
    job = {
        "metadata": {"name": "r-it1-train", "labels": LABELS},
        "spec": {},
        "status": {"conditions": [condition], "failed": 1},
    }
    soon = failed_at + datetime.timedelta(seconds=5)
    late = failed_at + datetime.timedelta(seconds=FAILED_POD_GRACE_SECONDS + 1)
    waiting = observe_children("r", [], [job], [], now=soon)["r-it1-train"]
    assert waiting.phase == "Running" and "waiting for its pod" in waiting.message
    message = {"kind": "error", "reason": "OOM", "message": "lower training.batchSize"}
    failed_pod = pod("r-it1-train", "0", 1, json.dumps(message))
    arrived = observe_children("r", [], [job], [failed_pod], now=soon)["r-it1-train"]
    assert arrived.phase == "Failed" and arrived.message.startswith("OOM")
    gave_up = observe_children("r", [], [job], [], now=late)["r-it1-train"]
    assert gave_up.phase == "Failed" and "backoff limit" in gave_up.message
    no_clock = observe_children("r", [], [job], [])["r-it1-train"]  # pure callers: no grace
    assert no_clock.phase == "Failed"

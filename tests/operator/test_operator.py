"""The real kopf operator against kmock, with a test kubelet: full runs, failures, restarts
in every stage, and suspend/resume."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from ..support.stub_kubelet import Kubelet, Outcome
from .conftest import operator_running

RUN_KEY = ("rft.dev/v1alpha1/rftruns", "ml", "arith")


def manifest(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"uri": "pvc://models/smollm2"},
        "data": {"train": "pvc://data/train.jsonl"},
        "iterations": {"max": 3},
        "evaluation": {"sets": [{"name": "main", "uri": "pvc://data/eval.jsonl"}]},
        **spec_overrides,
    }
    return {
        "apiVersion": "rft.dev/v1alpha1",
        "kind": "RFTRun",
        "metadata": {
            "name": "arith",
            "namespace": "ml",
            "uid": "uid-1",
            "generation": 1,
            "resourceVersion": "1",
        },
        "spec": spec,
    }


def job_index(name: str) -> int:
    return int(name.split("-it")[1].split("-")[0])


def succeed_all(name: str, job: dict[str, Any]) -> Outcome:
    k = job_index(name)
    if name.endswith("-score"):
        return (
            "succeed",
            {
                "kind": "score",
                "iteration": k,
                "evalScores": {"main/pass@1": round(0.1 + 0.2 * k, 3)},
                "samples": 80,
                "accepted": 10 + k,
                "trainPassRate": 0.2,
                "meanReward": 0.3,
                "seconds": {"sampling": 2.0, "evaluation": 1.0},
            },
        )
    return (
        "succeed",
        {
            "kind": "train",
            "iteration": k,
            "checkpoint": f"/mnt/rft/arith/it-{k}/checkpoint",
            "steps": 3,
            "seconds": {"training": 4.0},
        },
    )


def status_of(cluster: Any) -> dict[str, Any]:
    status: dict[str, Any] = dict(cluster.objects[RUN_KEY]).get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


async def wait_for(predicate: Any, timeout: float = 180.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def finished(cluster: Any) -> bool:
    status = status_of(cluster)
    return "True" in (
        condition(status, "Succeeded").get("status"),
        condition(status, "Failed").get("status"),
    )


def creations(cluster: Any) -> Counter[str]:
    """How many times each child Job/Deployment came into existence (from the emulator's
    per-object history: a version after nothing, or after a deletion, is a creation)."""
    made: Counter[str] = Counter()
    for (resource, _, name), obj in cluster.objects.items():
        if resource.plural not in ("jobs", "deployments"):
            continue
        previous = None
        for version in obj.history:
            if version is not None and previous is None:
                made[name] += 1
            previous = version
    return made


async def test_three_iterations_reach_succeeded(cluster: Any) -> None:
    cluster.objects[RUN_KEY] = manifest()
    async with Kubelet(str(cluster.url), succeed_all), operator_running():
        await wait_for(lambda: finished(cluster), what="the run to finish")
    status = status_of(cluster)
    assert condition(status, "Succeeded")["status"] == "True"
    assert condition(status, "Succeeded")["reason"] == "MaxIterations"
    assert status["stage"] == "Succeeded"
    assert [i["index"] for i in status["iterations"]] == [0, 1, 2]
    assert [i["evalScore"] for i in status["iterations"]] == [0.3, 0.5, 0.7]
    assert [i["accepted"] for i in status["iterations"]] == [10, 11, 12]
    assert status["baseline"]["evalScore"] == 0.1
    assert status["best"] == {
        "iteration": 2,
        "evalScore": 0.7,
        "checkpoint": "pvc://rft-runs/arith/it-2/checkpoint",
    }
    made = creations(cluster)
    assert all(count == 1 for count in made.values()), made
    assert set(made) == {"arith-sampler"} | {  # one long-lived sampler (sampler.keepAlive)
        f"arith-it{k}-score" for k in range(4)
    } | {f"arith-it{k}-train" for k in range(3)}
    # the sampler is released when the run ends; events tell the story
    assert not [
        k for k, o in cluster.objects.items() if k[0].plural == "deployments" and not o.deleted
    ]
    reasons = {dict(o)["reason"] for k, o in cluster.objects.items() if k[0].plural == "events"}
    assert {"StartingSampler", "Scoring", "Training", "MaxIterations"} <= reasons


def expected_iterations() -> list[dict[str, Any]]:
    return [
        {
            "index": k,
            "evalScore": round(0.3 + 0.2 * k, 3),
            "accepted": 10 + k,
            "checkpoint": f"pvc://rft-runs/arith/it-{k}/checkpoint",
        }
        for k in range(3)
    ]


def summary_of(status: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("index", "evalScore", "accepted", "checkpoint")
    return [{k: item.get(k) for k in keys} for item in status.get("iterations") or []]


def exists(cluster: Any, plural: str, name: str) -> bool:
    return any(
        key[0].plural == plural and key[2] == name and not obj.deleted
        for key, obj in cluster.objects.items()
    )


async def test_a_failing_training_job_fails_the_run_with_its_message(cluster: Any) -> None:
    failure = {
        "kind": "error",
        "reason": "OutOfMemory",
        "message": "training ran out of memory; lower training.batchSize",
    }

    def outcome(name: str, job: dict[str, Any]) -> Outcome:
        return ("fail", failure) if name == "arith-it1-train" else succeed_all(name, job)

    cluster.objects[RUN_KEY] = manifest()
    async with Kubelet(str(cluster.url), outcome), operator_running():
        await wait_for(lambda: finished(cluster), what="the run to fail")
    status = status_of(cluster)
    failed = condition(status, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "TrainingFailed"
    assert "arith-it1-train" in failed["message"]
    assert "OutOfMemory: training ran out of memory; lower training.batchSize" in failed["message"]
    assert status["stage"] == "Failed"
    assert condition(status, "Ready")["status"] == "False"
    assert [i["index"] for i in status["iterations"]] == [0, 1]  # iteration 0 is kept
    assert not exists(cluster, "deployments", "arith-sampler")
    warnings = [
        dict(o)
        for k, o in cluster.objects.items()
        if k[0].plural == "events" and dict(o)["type"] == "Warning"
    ]
    assert [w["reason"] for w in warnings] == ["TrainingFailed"]


@pytest.mark.parametrize(
    ("held", "plural", "stage"),
    [
        ("arith-sampler", "deployments", "StartingSampler"),
        ("arith-it1-score", "jobs", "Sampling"),
        ("arith-it1-train", "jobs", "Training"),
        ("arith-it3-score", "jobs", "Evaluating"),
    ],
    ids=["starting-sampler", "sampling", "training", "final-evaluation"],
)
async def test_operator_restart_mid_stage_duplicates_nothing(
    cluster: Any, held: str, plural: str, stage: str
) -> None:
    cluster.objects[RUN_KEY] = manifest()
    async with Kubelet(str(cluster.url), succeed_all, hold={held}) as kubelet:
        async with operator_running():
            await wait_for(
                lambda: exists(cluster, plural, held) and status_of(cluster).get("stage") == stage,
                what=stage,
            )
        # the operator is gone; the cluster moves on without it
        kubelet.hold.clear()
        await asyncio.sleep(0.3)
        async with operator_running():
            await wait_for(lambda: finished(cluster), what="the run to finish after restart")
    status = status_of(cluster)
    assert condition(status, "Succeeded")["reason"] == "MaxIterations"
    assert summary_of(status) == expected_iterations()
    assert status["best"]["iteration"] == 2
    made = creations(cluster)
    assert len(made) == 8 and all(count == 1 for count in made.values()), made


async def test_suspend_stops_pods_and_resume_finishes(cluster: Any) -> None:
    cluster.objects[RUN_KEY] = manifest()
    run_path = "/apis/rft.dev/v1alpha1/namespaces/ml/rftruns/arith"

    async def set_suspend(value: bool, generation: int) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.patch(
                str(cluster.url).rstrip("/") + run_path,
                json={"metadata": {"generation": generation}, "spec": {"suspend": value}},
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response,
        ):
            response.raise_for_status()

    def job(name: str) -> dict[str, Any]:
        return dict(cluster.objects["batch/v1/jobs", "ml", name])

    async with (
        Kubelet(str(cluster.url), succeed_all, hold={"arith-it0-score"}) as kubelet,
        operator_running(),
    ):
        await wait_for(lambda: exists(cluster, "jobs", "arith-it0-score"), what="scoring")
        await set_suspend(True, 2)
        await wait_for(lambda: status_of(cluster).get("stage") == "Suspended", what="Suspended")
        await wait_for(
            lambda: job("arith-it0-score")["spec"]["suspend"] is True, what="job suspended"
        )
        await wait_for(
            lambda: not exists(cluster, "deployments", "arith-sampler"),
            what="sampler deleted",
        )
        status = status_of(cluster)
        assert condition(status, "Suspended")["status"] == "True"
        assert condition(status, "Ready")["status"] == "False"
        kubelet.hold.clear()
        await asyncio.sleep(0.5)  # a suspended job is not finished by anyone
        assert not job("arith-it0-score").get("status", {}).get("conditions")
        await set_suspend(False, 3)
        await wait_for(lambda: finished(cluster), what="the run to finish after resume")
    status = status_of(cluster)
    assert condition(status, "Succeeded")["status"] == "True"
    assert condition(status, "Suspended")["status"] == "False"
    assert summary_of(status) == expected_iterations()
    assert status["observedGeneration"] == 3
    assert creations(cluster)["arith-it0-score"] == 1
    assert creations(cluster)["arith-sampler"] == 2  # recreated on resume, by design


async def test_a_regression_guard_stops_the_run(cluster: Any) -> None:
    """The second eval set guards against regressions: when it drops more than its maxDrop
    below the baseline, the run stops and that checkpoint is not the best."""
    guard = {0: 0.5, 1: 0.49, 2: 0.40}

    def outcome(name: str, job: dict[str, Any]) -> Outcome:
        verdict = succeed_all(name, job)
        k = job_index(name)
        if verdict and name.endswith("-score"):
            verdict[1]["evalScores"]["guard/pass@1"] = guard.get(k, 0.4)
        return verdict

    cluster.objects[RUN_KEY] = manifest(
        evaluation={
            "sets": [
                {"name": "main", "uri": "pvc://data/eval.jsonl"},
                {"name": "guard", "uri": "pvc://data/g.jsonl", "maxDrop": 0.02},
            ]
        }
    )
    async with Kubelet(str(cluster.url), outcome), operator_running():
        await wait_for(lambda: finished(cluster), what="the run to stop")
    status = status_of(cluster)
    succeeded = condition(status, "Succeeded")
    assert succeeded["reason"] == "RegressionGuard"
    assert "eval set guard dropped 0.100 below its baseline 0.500" in succeeded["message"]
    # scoring 2 evaluated policy 2 (tripped) and had already sampled; it is never trained
    assert [i["index"] for i in status["iterations"]] == [0, 1, 2]
    assert "checkpoint" not in status["iterations"][2]
    assert status["best"]["iteration"] == 0
    assert not exists(cluster, "jobs", "arith-it2-train")

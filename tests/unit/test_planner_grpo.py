"""The plan of a GRPO run (training.method grpo): the scoring Jobs only evaluate, the
training Job samples through the long-lived sampler, which stays up while it trains."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from rft_operator.actions import Delete, StartSampler, StartScoreJob, StartTrainJob
from rft_operator.conditions import condition_status
from rft_operator.manifests import RunRef, build_train_job
from rft_runtime.config.jobs import TrainJobConfig
from rft_runtime.config.keys import (
    GENERATION_SECONDS,
    POLICY_SYNC_SECONDS,
    SCORING_SECONDS,
    TRAINING_SECONDS,
)

from .test_planner import Backend, make_spec

GRPO = {"method": "grpo", "grpo": {"groupSize": 4, "promptsPerStep": 6, "stepsPerIteration": 5}}


def grpo_spec(**overrides: Any) -> Any:
    return make_spec(sampler={"keepAlive": True}, training=GRPO, **overrides)


def grpo_train_summary(k: int) -> dict[str, Any]:
    return {
        "kind": "train",
        "iteration": k,
        "checkpoint": f"/mnt/rft/r/it-{k}/checkpoint",
        "steps": 5,
        "samples": 120,
        "meanReward": 0.4 + 0.1 * k,
        "policyLag": 0,
        "seconds": {
            TRAINING_SECONDS: 30.0,
            GENERATION_SECONDS: 12.0,
            SCORING_SECONDS: 1.5,
            POLICY_SYNC_SECONDS: 6.0,
        },
    }


def finish(backend: Backend) -> None:
    """Training Jobs end with a GRPO summary; everything else as the table tests do."""
    for name, child in list(backend.children.items()):
        if child.kind == "train" and child.phase != "Succeeded":
            summary = grpo_train_summary(child.index)
            backend.children[name] = replace(child, phase="Succeeded", summary=summary)
    backend.finish_all()


def run_to_end(backend: Backend) -> tuple[list[Any], list[TrainJobConfig], list[str]]:
    scores, trains, sampler_deletes = [], [], []
    for _ in range(60):
        result = backend.plan()
        scores += [a.config for a in result.of_type(StartScoreJob)]
        trains += [a.config for a in result.of_type(StartTrainJob)]
        sampler_deletes += [a.name for a in result.of_type(Delete) if a.kind == "sampler"]
        if backend.done():
            return scores, trains, sampler_deletes
        finish(backend)
    raise AssertionError(f"run did not finish: {backend.run.status.message}")


def test_scoring_jobs_only_evaluate_and_training_jobs_sample_through_the_sampler() -> None:
    backend = Backend(grpo_spec())
    scores, trains, deletes = run_to_end(backend)
    status = backend.run.status
    assert status.stage == "Succeeded"
    assert [s.iteration for s in scores] == [0, 1, 2, 3]
    assert all(s.train is None and s.evaluation is not None for s in scores)
    assert [t.iteration for t in trains] == [0, 1, 2]
    assert [n for n in backend.started if "sampler" in n] == ["r-sampler"] and deletes == [
        "r-sampler"
    ]
    for k, train in enumerate(trains):
        assert train.method == "grpo" and train.dataset_path is None
        job = train.grpo
        assert job is not None
        assert job.policy.base_url == "http://r-sampler:8000/v1"
        assert job.policy_sync.policy_file == "/mnt/rft/r/sampler/policy.json"
        # the sampler first serves what training k starts from: policy k
        expected = "/mnt/pvc/models/base" if k == 0 else f"/mnt/rft/r/it-{k - 1}/checkpoint"
        assert job.policy_sync.policy_path == train.init_model_path == expected
        assert job.sampling.n == 4 and job.params.prompts_per_step == 6
        assert job.sampling.max_tokens == 256  # sampler.maxTokens when not set
        assert job.step_offset == 5 * k  # prompt order continues across iterations
        assert job.prompts.path == "/mnt/pvc/data/train.jsonl"
        assert [r.name for r in job.rewards] == ["answer"]


def test_the_status_records_what_the_training_job_sampled() -> None:
    backend = Backend(grpo_spec())
    run_to_end(backend)
    items = backend.run.status.iterations or []
    assert [i.index for i in items] == [0, 1, 2]
    for item in items:
        assert item.samples == 120 and item.policy_lag == 0 and item.accepted is None
        assert item.mean_reward == pytest.approx(0.4 + 0.1 * item.index)
        assert item.durations is not None
        assert item.durations["training"] == 30.0
        assert item.durations[GENERATION_SECONDS] == 12.0
        assert item.durations[POLICY_SYNC_SECONDS] == 6.0
        assert item.eval_score == pytest.approx(0.1 + 0.2 * (item.index + 1))
    assert (items[0].durations or {}).get("baselineEvaluation") == 5.0  # kept without sampling
    best = backend.run.status.best
    assert best is not None and best.iteration == 2


def test_the_sampler_stays_up_while_the_training_job_runs() -> None:
    backend = Backend(grpo_spec())
    while "r-it0-train" not in backend.children:  # sampler, baseline evaluation, training
        backend.plan()
        backend.finish_all(only="sampler")
        backend.finish_all(only="score")
    result = backend.plan()  # the training Job runs
    assert "r-it0-train" in backend.children
    assert not any(isinstance(a, Delete) and a.kind == "sampler" for a in result.actions)
    assert backend.children["r-sampler"].phase == "Ready"
    assert result.status.stage == "Training"
    assert "GRPO, 5 policy steps" in (result.status.message or "")
    assert condition_status(result.status.conditions, "Training") == "True"


def test_without_evaluation_training_waits_for_the_sampler_it_starts() -> None:
    backend = Backend(grpo_spec(evaluation=None))
    result = backend.plan()
    assert [a.name for a in result.of_type(StartSampler)] == ["r-sampler"]
    assert not result.of_type(StartScoreJob) and not result.of_type(StartTrainJob)
    assert backend.plan().actions == []  # sampler not ready: nothing else starts
    backend.finish_all()
    [train] = backend.plan().of_type(StartTrainJob)
    assert train.name == "r-it0-train"
    scores, _, _ = run_to_end(backend)
    assert scores == [] and backend.run.status.stage == "Succeeded"
    assert len(backend.run.status.iterations or []) == 3


def test_a_failed_sampler_fails_the_grpo_training_step() -> None:
    backend = Backend(grpo_spec(evaluation=None))
    backend.plan()
    sampler = backend.children["r-sampler"]
    backend.children["r-sampler"] = replace(sampler, phase="Failed", message="OOMKilled")
    result = backend.plan()
    assert result.status.stage == "Failed"
    assert "OOMKilled" in (result.status.message or "")


def test_the_grpo_training_pod_gets_the_judge_keys_and_the_sandbox() -> None:
    spec = grpo_spec(
        rewards=[
            {"name": "answer", "type": "math", "weight": 1.0},
            {"name": "tests", "type": "code", "weight": 0.5},
            {
                "name": "judge",
                "type": "judge",
                "weight": 0.5,
                "judge": {
                    "url": "https://judge.example/v1",
                    "model": "j",
                    "rubric": "Grade it.",
                    "apiKeySecretRef": {"name": "judge-key", "key": "token"},
                },
            },
        ]
    )
    backend = Backend(spec)
    _, trains, _ = run_to_end(backend)
    job = build_train_job(RunRef("r", "ns", "uid"), spec, 0, trains[0])
    container = job["spec"]["template"]["spec"]["containers"][0]
    secrets = [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert [e["valueFrom"]["secretKeyRef"]["name"] for e in secrets] == ["judge-key"]
    assert container["securityContext"]["seccompProfile"]["type"] == "Unconfined"

"""Table-style tests of the pure planner: stage transitions, stop rules, failures,
suspend/resume and spec changes. A tiny driver plays the backend: it turns Start* actions
into children and finishes them with the summaries a test chooses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from rft_operator.actions import (
    Child,
    ChildKind,
    Delete,
    Event,
    Plan,
    ResumeChild,
    Run,
    StartSampler,
    StartScoreJob,
    StartTrainJob,
    SuspendChild,
)
from rft_operator.api import RFTRunSpec, RFTRunStatus
from rft_operator.conditions import condition_status
from rft_operator.layout import Layout
from rft_operator.planner import plan
from rft_runtime.config.keys import TRAINING_SECONDS

NOW = "2026-01-01T00:00:00Z"
LAYOUT = Layout(run_dir="/mnt/rft/r", storage_claim="rft-runs")


def make_spec(**overrides: Any) -> RFTRunSpec:
    spec: dict[str, Any] = {
        "model": {"uri": "pvc://models/base"},
        "data": {"train": "pvc://data/train.jsonl"},
        "iterations": {"max": 3},
        "sampler": {"keepAlive": False},  # one sampler per iteration; keep-alive tests below
        "evaluation": {
            "sets": [
                {"name": "main", "uri": "pvc://data/eval.jsonl"},
                {"name": "guard", "uri": "pvc://data/guard.jsonl", "maxDrop": 0.02},
            ]
        },
    }
    for key, value in overrides.items():
        if value is None:
            spec.pop(key, None)
        elif isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return RFTRunSpec.model_validate(spec)


ScoreFn = Callable[[int], dict[str, float]]


def climbing(k: int) -> dict[str, float]:
    """Eval scores of policy k: main climbs, guard stays."""
    return {"main/pass@1": 0.1 + 0.2 * k, "guard/pass@1": 0.5}


def score_summary(k: int, scores: ScoreFn, accepted: int = 10) -> dict[str, Any]:
    return {
        "kind": "score",
        "iteration": k,
        "evalScores": scores(k),
        "samples": 80,
        "accepted": accepted,
        "trainPassRate": 0.25,
        "meanReward": 0.3,
        "seconds": {"evaluation": 5.0, "sampling": 20.0},
    }


def train_summary(k: int) -> dict[str, Any]:
    return {
        "kind": "train",
        "iteration": k,
        "checkpoint": f"/mnt/rft/r/it-{k}/checkpoint",
        "steps": 4,
        "finalLoss": 0.5,
        "seconds": {TRAINING_SECONDS: 30.0},  # what the training Job writes
    }


class Backend:
    """Plays the cluster for the planner: children appear on Start*, finish on demand."""

    def __init__(
        self,
        spec: RFTRunSpec,
        scores: ScoreFn = climbing,
        accepted: Callable[[int], int] = lambda k: 10,
    ) -> None:
        self.run = Run(name="r", spec=spec, status=RFTRunStatus(), generation=1)
        self.children: dict[str, Child] = {}
        self.scores, self.accepted = scores, accepted
        self.started: list[str] = []
        self.events: list[Event] = []

    def plan(self) -> Plan:
        result = plan(self.run, self.children, LAYOUT, NOW)
        self.run = replace(self.run, status=result.status)
        for action in result.actions:
            if isinstance(action, StartSampler | StartScoreJob | StartTrainJob):
                assert action.name not in self.children, f"duplicate start of {action.name}"
                kinds: dict[type, ChildKind] = {
                    StartSampler: "sampler",
                    StartScoreJob: "score",
                    StartTrainJob: "train",
                }
                kind = kinds[type(action)]
                self.children[action.name] = Child(action.name, kind, action.index, "Pending")
                self.started.append(action.name)
            elif isinstance(action, Delete):
                self.children.pop(action.name, None)
            elif isinstance(action, Event):
                self.events.append(action)
        return result

    def finish_all(self, only: ChildKind | None = None) -> None:
        """Everything pending (of one kind, if given) becomes ready/succeeded with its
        summary."""
        for name, child in list(self.children.items()):
            if only is not None and child.kind != only:
                continue
            if child.kind == "sampler":
                self.children[name] = replace(child, phase="Ready")
            elif child.phase != "Succeeded":
                summary = (
                    score_summary(child.index, self.scores, self.accepted(child.index))
                    if child.kind == "score"
                    else train_summary(child.index)
                )
                self.children[name] = replace(child, phase="Succeeded", summary=summary)

    def run_to_end(self, limit: int = 50) -> RFTRunStatus:
        for _ in range(limit):
            self.plan()
            if self.done():
                return self.run.status
            self.finish_all()
        raise AssertionError(f"run did not finish: {self.run.status.message}")

    def done(self) -> bool:
        conds = self.run.status.conditions
        return "True" in (condition_status(conds, "Succeeded"), condition_status(conds, "Failed"))


def reason(status: RFTRunStatus, type_: str) -> str:
    return next(c.reason for c in status.conditions or [] if c.type == type_)


# --- stage transitions -------------------------------------------------------------------


def test_fresh_run_starts_the_sampler_for_the_base_model() -> None:
    backend = Backend(make_spec())
    result = backend.plan()
    [start] = result.of_type(StartSampler)
    assert start.name == "r-it0-sampler"
    assert start.config.model_path == "/mnt/pvc/models/base"
    assert result.status.stage == "StartingSampler"
    assert condition_status(result.status.conditions, "Ready") == "True"
    assert condition_status(result.status.conditions, "Sampling") == "True"
    assert result.status.start_time == NOW


def test_score_job_waits_for_a_ready_sampler() -> None:
    backend = Backend(make_spec())
    backend.plan()
    assert backend.plan().actions == []  # sampler still pending: nothing new to do
    backend.children["r-it0-sampler"] = replace(backend.children["r-it0-sampler"], phase="Ready")
    [start] = backend.plan().of_type(StartScoreJob)
    assert start.config.policy.base_url == "http://r-it0-sampler:8000/v1"
    assert start.config.evaluation is not None and start.config.train is not None
    assert backend.run.status.stage == "Sampling"


def test_scoring_done_records_baseline_frees_the_sampler_and_starts_training() -> None:
    backend = Backend(make_spec())
    backend.plan()
    backend.finish_all()
    backend.plan()
    backend.finish_all()
    result = backend.plan()
    assert Delete("r-it0-sampler", "sampler") in result.actions
    [train] = result.of_type(StartTrainJob)
    assert train.config.dataset_path == "/mnt/rft/r/it-0/sft.jsonl"
    assert train.config.init_model_path == "/mnt/pvc/models/base"
    status = result.status
    assert status.baseline is not None and status.baseline.eval_score == pytest.approx(0.1)
    assert status.iterations is not None and status.iterations[0].accepted == 10
    assert status.stage == "Training"
    assert condition_status(status.conditions, "Training") == "True"
    assert condition_status(status.conditions, "Sampling") == "False"


def test_training_done_moves_to_the_next_policy() -> None:
    backend = Backend(make_spec())
    for _ in range(3):
        backend.plan()
        backend.finish_all()
    result = backend.plan()
    [start] = result.of_type(StartSampler)
    assert start.name == "r-it1-sampler"
    assert start.config.model_path == "/mnt/rft/r/it-0/checkpoint"
    assert result.status.iteration == 1
    assert result.status.iterations is not None
    assert result.status.iterations[0].checkpoint == "pvc://rft-runs/r/it-0/checkpoint"


def test_three_iterations_reach_succeeded_with_every_metric() -> None:
    backend = Backend(make_spec())
    status = backend.run_to_end()
    assert status.stage == "Succeeded"
    assert reason(status, "Succeeded") == "MaxIterations"
    assert condition_status(status.conditions, "Ready") == "False"
    assert [i.index for i in status.iterations or []] == [0, 1, 2]
    for item in status.iterations or []:
        assert item.eval_score == pytest.approx(0.1 + 0.2 * (item.index + 1))
        assert item.samples == 80 and item.accepted == 10 and item.checkpoint
        assert item.durations == {"evaluation": 5.0, "sampling": 20.0, "training": 30.0} or (
            item.index == 0
        )
    assert status.best is not None and status.best.iteration == 2
    assert status.best.checkpoint == "pvc://rft-runs/r/it-2/checkpoint"
    assert status.completion_time == NOW
    # it3 is the final evaluation: a sampler and a score job, no training
    assert backend.started[-2:] == ["r-it3-sampler", "r-it3-score"]
    assert "r-it3-train" not in backend.started
    assert not any(c.kind == "sampler" for c in backend.children.values())


def test_a_long_lived_sampler_serves_every_iteration_and_goes_at_the_end() -> None:
    backend = Backend(make_spec(sampler={"keepAlive": True}))
    deleted: list[str] = []
    for _ in range(50):
        result = backend.plan()
        deleted += [a.name for a in result.of_type(Delete) if a.kind == "sampler"]
        if backend.done():
            break
        assert any(c.kind == "sampler" for c in backend.children.values()) or not deleted
        backend.finish_all()
    status = backend.run.status
    assert status.stage == "Succeeded" and [i.index for i in status.iterations or []] == [0, 1, 2]
    samplers = [name for name in backend.started if "sampler" in name]
    assert samplers == ["r-sampler"] and deleted == ["r-sampler"]  # started once, deleted once
    assert not any(c.kind == "sampler" for c in backend.children.values())


def test_each_scoring_job_asks_the_long_lived_sampler_for_its_policy() -> None:
    backend = Backend(make_spec(sampler={"keepAlive": True}))
    configs = {}
    for _ in range(50):
        result = backend.plan()
        for start in result.of_type(StartScoreJob):
            configs[start.index] = start.config
        for start in result.of_type(StartSampler):
            assert start.config.policy_file == "/mnt/rft/r/sampler/policy.json"
            assert start.config.model_path == "/mnt/pvc/models/base"
        if backend.done():
            break
        backend.finish_all()
    assert sorted(configs) == [0, 1, 2, 3]
    for k, config in configs.items():
        assert config.policy.base_url == "http://r-sampler:8000/v1"
        sync = config.policy_sync
        assert sync is not None and sync.policy_file == "/mnt/rft/r/sampler/policy.json"
        assert sync.loaded_dir == "/mnt/rft/r/sampler/loaded"
        expected = "/mnt/pvc/models/base" if k == 0 else f"/mnt/rft/r/it-{k - 1}/checkpoint"
        assert sync.policy_path == expected


def test_a_per_iteration_sampler_left_over_is_deleted_when_the_sampler_is_long_lived() -> None:
    backend = Backend(make_spec(sampler={"keepAlive": True}))
    backend.children["r-it0-sampler"] = Child("r-it0-sampler", "sampler", 0, "Ready")
    result = backend.plan()
    assert Delete("r-it0-sampler", "sampler") in result.actions
    [start] = result.of_type(StartSampler)
    assert start.name == "r-sampler"


def test_final_score_job_only_evaluates() -> None:
    backend = Backend(make_spec(iterations={"max": 1}))
    backend.run_to_end()
    final = [a for a in backend.started if a == "r-it1-score"]
    assert final == ["r-it1-score"]


# --- stop rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iterations", "scores", "expected_reason", "trained"),
    [
        ({"max": 5, "stopAtEvalScore": 0.5}, climbing, "TargetReached", 2),
        (
            {"max": 5, "patience": 2},
            lambda k: {"main/pass@1": [0.1, 0.4, 0.3, 0.35, 0.9, 0.9][k], "guard/pass@1": 0.5},
            "NoImprovement",
            3,
        ),
        (
            {"max": 5},
            lambda k: {"main/pass@1": 0.1 + 0.1 * k, "guard/pass@1": 0.5 - 0.015 * k},
            "RegressionGuard",
            2,
        ),
        ({"max": 2}, climbing, "MaxIterations", 2),
    ],
    ids=["target", "patience", "guard", "max"],
)
def test_stop_rules(
    iterations: dict[str, Any], scores: ScoreFn, expected_reason: str, trained: int
) -> None:
    backend = Backend(make_spec(iterations=iterations), scores=scores)
    status = backend.run_to_end()
    assert reason(status, "Succeeded") == expected_reason
    assert len([n for n in backend.started if n.endswith("-train")]) == trained


def test_guard_tripping_checkpoint_is_never_best() -> None:
    scores = {0: (0.1, 0.5), 1: (0.3, 0.49), 2: (0.6, 0.40)}
    backend = Backend(
        make_spec(iterations={"max": 3}),
        scores=lambda k: {"main/pass@1": scores[k][0], "guard/pass@1": scores[k][1]},
    )
    status = backend.run_to_end()
    assert reason(status, "Succeeded") == "RegressionGuard"
    assert status.best is not None and status.best.iteration == 0


def test_without_evaluation_the_last_checkpoint_is_best() -> None:
    backend = Backend(make_spec(evaluation=None, iterations={"max": 2}))
    status = backend.run_to_end()
    assert reason(status, "Succeeded") == "MaxIterations"
    assert status.best is not None and status.best.iteration == 1
    assert status.best.eval_score is None
    assert not any(n.endswith("it2-score") for n in backend.started)


def test_no_kept_samples_carries_the_policy_over() -> None:
    backend = Backend(make_spec(iterations={"max": 2}), accepted=lambda k: 0 if k == 0 else 5)
    status = backend.run_to_end()
    assert "r-it0-train" not in backend.started and "r-it1-train" in backend.started
    assert status.iterations is not None
    assert status.iterations[0].checkpoint == "pvc://models/base"
    assert any(e.reason == "NoSamplesKept" for e in backend.events)


def test_teacher_without_evaluation_needs_no_sampler() -> None:
    spec = make_spec(
        evaluation=None,
        iterations={"max": 1},
        sampler={
            "teacher": {
                "url": "https://t/v1",
                "model": "big",
                "apiKeySecretRef": {"name": "s", "key": "k"},
            }
        },
    )
    backend = Backend(spec)
    [score] = backend.plan().of_type(StartScoreJob)
    assert score.config.teacher is not None and score.config.teacher.model == "big"
    assert score.config.teacher.api_key_env == "RFT_TEACHER_API_KEY"
    backend.run_to_end()
    assert not any(n.endswith("-sampler") for n in backend.started)


def test_min_reward_schedule_and_dpo_reference() -> None:
    spec = make_spec(
        iterations={"max": 2},
        filter={"minRewardSchedule": [0.5, 0.9], "rejected": "lowest"},
        training={"method": "dpo", "initFrom": "previous"},
    )
    backend = Backend(spec)
    configs: list[Any] = []
    for _ in range(20):
        result = backend.plan()
        configs += result.of_type(StartScoreJob) + result.of_type(StartTrainJob)
        if backend.done():
            break
        backend.finish_all()
    scores = [a.config.min_reward for a in configs if isinstance(a, StartScoreJob)]
    assert scores[:2] == [0.5, 0.9]
    trains = [a.config for a in configs if isinstance(a, StartTrainJob)]
    assert trains[1].dataset_path.endswith("it-1/dpo.jsonl")
    assert (
        trains[1].reference_model_path
        == trains[1].init_model_path
        == ("/mnt/rft/r/it-0/checkpoint")
    )


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failing", "expected"),
    [
        ("r-it0-sampler", "SamplerFailed"),
        ("r-it0-score", "ScoringFailed"),
        ("r-it0-train", "TrainingFailed"),
    ],
)
def test_a_failed_child_fails_the_run_with_its_message(failing: str, expected: str) -> None:
    backend = Backend(make_spec())
    for _ in range(10):
        backend.plan()
        if failing in backend.children:
            backend.children[failing] = replace(
                backend.children[failing], phase="Failed", message="OOMKilled: lower batchSize"
            )
            break
        backend.finish_all()
    result = backend.plan()
    status = result.status
    assert status.stage == "Failed"
    assert reason(status, "Failed") == expected
    failed = next(c for c in status.conditions or [] if c.type == "Failed")
    assert "OOMKilled: lower batchSize" in failed.message and failing in failed.message
    assert condition_status(status.conditions, "Ready") == "False"
    assert any(e.type == "Warning" and e.reason == expected for e in backend.events)
    assert backend.plan().actions == []  # terminal: nothing more happens


def test_missing_summary_is_a_clear_failure() -> None:
    backend = Backend(make_spec())
    backend.plan()
    backend.finish_all()
    backend.plan()
    backend.children["r-it0-score"] = replace(
        backend.children["r-it0-score"], phase="Succeeded", summary=None
    )
    status = backend.plan().status
    assert reason(status, "Failed") == "NoSummary"


def test_unsupported_uri_fails_with_the_fix() -> None:
    """Admission only lets pvc:// and file:// through; anything else that reaches the
    planner (e.g. an old object) fails clearly instead of crashing the operator."""
    spec = make_spec()
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"uri": "s3://b/m"})})
    backend = Backend(spec)
    status = backend.plan().status
    assert reason(status, "Failed") == "UnsupportedURI"
    assert "pvc://<claim>/<path>" in (status.message or "")


def test_layout_resolves_storage_inputs_and_files() -> None:
    assert LAYOUT.resolve("pvc://rft-runs/r/it-0/checkpoint") == "/mnt/rft/r/it-0/checkpoint"
    assert LAYOUT.resolve("pvc://models/base") == "/mnt/pvc/models/base"
    assert LAYOUT.resolve("file:///opt/models/m") == "/opt/models/m"
    assert LAYOUT.uri_of("/mnt/rft/r/it-0/checkpoint") == "pvc://rft-runs/r/it-0/checkpoint"


# --- suspend / resume / spec changes / idempotency --------------------------------------


def test_suspend_stops_pods_and_resume_continues() -> None:
    backend = Backend(make_spec())
    backend.plan()
    backend.finish_all()
    backend.plan()  # score job started, sampler ready
    backend.children["r-it0-score"] = replace(backend.children["r-it0-score"], phase="Running")
    backend.run = replace(backend.run, spec=make_spec(suspend=True), generation=2)
    result = backend.plan()
    assert Delete("r-it0-sampler", "sampler") in result.actions
    assert SuspendChild("r-it0-score", "score") in result.actions
    assert result.status.stage == "Suspended"
    assert condition_status(result.status.conditions, "Suspended") == "True"
    assert condition_status(result.status.conditions, "Ready") == "False"
    backend.children["r-it0-score"] = replace(backend.children["r-it0-score"], phase="Suspended")
    backend.run = replace(backend.run, spec=make_spec(), generation=3)
    result = backend.plan()
    assert [a.name for a in result.of_type(StartSampler)] == ["r-it0-sampler"]
    assert condition_status(result.status.conditions, "Suspended") == "False"
    assert any(e.reason == "Resumed" for e in backend.events)
    backend.finish_all()
    backend.children["r-it0-score"] = replace(
        backend.children["r-it0-score"], phase="Suspended", held=True
    )
    result = backend.plan()
    assert ResumeChild("r-it0-score", "score") in result.actions
    assert backend.run_to_end().stage == "Succeeded"


def test_a_job_suspended_by_its_queue_is_never_resumed_by_the_operator() -> None:
    backend = Backend(make_spec(runtime={"queueName": "team-a"}))
    backend.plan()
    backend.finish_all()
    backend.plan()  # the score job is created (suspended: the queue admits it)
    backend.children["r-it0-score"] = replace(backend.children["r-it0-score"], phase="Suspended")
    result = backend.plan()
    assert not result.of_type(ResumeChild)
    assert "waiting for its queue" in (result.status.message or "")
    # spec.suspend with a queue: Jobs are deleted (the queue owns `suspend`), not suspended
    backend.children["r-it0-score"] = replace(backend.children["r-it0-score"], phase="Running")
    backend.run = replace(
        backend.run, spec=make_spec(runtime={"queueName": "team-a"}, suspend=True), generation=2
    )
    result = backend.plan()
    assert Delete("r-it0-score", "score") in result.actions
    assert not result.of_type(SuspendChild)


def test_finished_jobs_are_deleted_once_their_results_are_in_the_status() -> None:
    backend = Backend(make_spec())
    backend.plan()
    backend.finish_all()
    backend.plan()
    backend.finish_all()  # score 0 succeeded
    first = plan(backend.run, backend.children, LAYOUT, NOW)
    assert Delete("r-it0-score", "score") not in first.actions  # recorded only in this pass
    backend.run = replace(backend.run, status=first.status)
    second = plan(backend.run, backend.children, LAYOUT, NOW)
    assert Delete("r-it0-score", "score") in second.actions


def test_retry_continues_a_failed_run_from_the_failed_stage() -> None:
    backend = Backend(make_spec())
    backend.plan()
    backend.finish_all()
    for _ in range(3):
        backend.plan()
        backend.finish_all(only="score")
        backend.finish_all(only="sampler")
    train = "r-it0-train"
    backend.children[train] = replace(backend.children[train], phase="Failed", message="OOM")
    assert backend.plan().status.stage == "Failed"
    assert backend.plan().status.stage == "Failed"  # stays failed without a request
    backend.run = replace(backend.run, retry="1")
    result = backend.plan()
    assert Delete(train, "train") in result.actions
    assert [a.name for a in result.of_type(StartTrainJob)] == [train]  # made anew, same pass
    assert not result.of_type(StartScoreJob)  # finished stages are kept
    assert result.status.retry == "1" and result.status.stage == "Training"
    assert condition_status(result.status.conditions, "Failed") == "False"
    assert backend.run_to_end().stage == "Succeeded"


def test_lowering_max_iterations_mid_run_stops_at_the_next_boundary() -> None:
    backend = Backend(make_spec(iterations={"max": 5}))
    for _ in range(8):
        backend.plan()
        backend.finish_all()
    assert (backend.run.status.iteration or 0) >= 2
    backend.run = replace(backend.run, spec=make_spec(iterations={"max": 1}), generation=2)
    status = backend.plan().status
    assert reason(status, "Succeeded") == "MaxIterations"
    assert status.observed_generation == 2
    assert any(e.reason == "SpecChanged" for e in backend.events)


def test_planning_twice_starts_nothing_twice() -> None:
    backend = Backend(make_spec())
    for _ in range(12):
        first = plan(backend.run, backend.children, LAYOUT, NOW)
        second = plan(backend.run, backend.children, LAYOUT, NOW)
        assert first.actions == second.actions
        assert first.status == second.status
        backend.plan()  # asserts no duplicate start
        backend.finish_all()


def test_condition_transition_time_moves_only_on_change() -> None:
    backend = Backend(make_spec())
    backend.plan()
    ready = next(c for c in backend.run.status.conditions or [] if c.type == "Ready")
    later = plan(backend.run, backend.children, LAYOUT, "2026-01-02T00:00:00Z")
    ready_later = next(c for c in later.status.conditions or [] if c.type == "Ready")
    assert ready_later.last_transition_time == ready.last_transition_time == NOW


def test_a_sampler_left_over_after_its_scoring_was_recorded_is_deleted() -> None:
    backend = Backend(make_spec())
    for _ in range(3):
        backend.plan()
        backend.finish_all()
    # the operator died after recording scoring 0 but before deleting the sampler
    backend.children["r-it0-sampler"] = Child("r-it0-sampler", "sampler", 0, "Ready")
    result = backend.plan()
    assert Delete("r-it0-sampler", "sampler") in result.actions
    assert not result.of_type(StartScoreJob)

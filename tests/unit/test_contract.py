"""The contract at the pod boundary: for a planned run, every path, key and environment
variable the operator puts into a pod is the one the runtime reads there.

Checked through the shared definitions in rft_runtime/config/ (paths, keys, env,
termination), never by spelling a file name or key again here.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from rft_operator import progress
from rft_operator.api import RFTRunSpec, RFTRunStatus
from rft_operator.jobconfigs import (
    eval_concurrency,
    sampler_of,
    score_config,
    serve_config,
    train_config,
)
from rft_operator.kubelet import controller as kubelet_controller
from rft_operator.layout import Layout, cluster_layout
from rft_operator.manifests import (
    RunRef,
    build_sampler_deployment,
    build_score_job,
    build_train_job,
)
from rft_operator.observe import job_summary
from rft_operator.pod import CONFIG_ARG
from rft_runtime.config import env, keys, paths, termination
from rft_runtime.config.jobs import (
    FailureSummary,
    ScoreJobConfig,
    ScoreSummary,
    TrainJobConfig,
    TrainSummary,
    load_config,
)
from rft_runtime.config.paths import IterationPaths, RunPaths
from rft_runtime.score import job as score_job
from rft_runtime.score.client import EndpointClient
from rft_runtime.score.job import summary_scores

from ..conftest import ROOT, load_yaml

RUN = RunRef(name="math-qwen-dpo", namespace="ml-team", uid="uid-1")


@pytest.fixture(params=["sft", "dpo"])
def spec(request: pytest.FixtureRequest) -> RFTRunSpec:
    """The complete example (teacher with a Secret, two eval sets, 2 nodes) plus a judge
    reward with its own Secret, trained with SFT and with DPO."""
    manifest: dict[str, Any] = load_yaml(ROOT / "examples" / "complete.yaml")["spec"]
    manifest["rewards"].append(
        {
            "name": "grader-1",
            "type": "judge",
            "weight": 0.5,
            "judge": {
                "url": "https://judge.example/v1",
                "model": "judge",
                "rubric": "Grade it.",
                "apiKeySecretRef": {"name": "judge-key", "key": "token"},
            },
        }
    )
    manifest["training"]["method"] = request.param
    if request.param == "sft":
        manifest["filter"].pop("rejected", None)
    manifest["training"]["mode"] = "full"
    manifest["training"]["resumeOptimizer"] = True
    manifest["training"].pop("lora", None)
    return RFTRunSpec.model_validate(manifest)


@pytest.fixture
def layout(spec: RFTRunSpec) -> Layout:
    return cluster_layout(RUN.name, RUN.namespace, spec)


def _container_env(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in container["env"]}


def _pod_env(obj: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Set what the kubelet would: plain values as written, Secret refs as a fake key."""
    for name, entry in _container_env(obj).items():
        if "value" in entry:
            monkeypatch.setenv(name, entry["value"])
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            monkeypatch.setenv(name, "sk-test")


def test_iteration_folders_are_the_runtime_paths(spec: RFTRunSpec, layout: Layout) -> None:
    status = RFTRunStatus()
    run = RunPaths(layout.run_dir)
    for k in range(spec.iterations.max):
        score = score_config(spec, RUN.name, k, layout)
        train = train_config(spec, status, RUN.name, k, layout)
        assert score.output_dir == train.output_dir == run.iteration(k).dir
        assert Path(score.output_dir).is_relative_to(paths.STORAGE_MOUNT)
        # the training set is the file the scoring Job writes for this method
        written = IterationPaths(score.output_dir)
        assert train.dataset_path == written.dataset(spec.training.method)
        if spec.training.method == "dpo":
            assert train.dataset_path == written.dpo_dataset
        else:
            assert train.dataset_path == written.sft_dataset
        # resuming reads the training state the previous training Job wrote
        if k > 0:
            previous = train_config(spec, status, RUN.name, k - 1, layout)
            assert train.resume_optimizer_from == IterationPaths(previous.output_dir).train_state


def test_the_learning_rate_decays_over_fixed_samples_and_stays_on_fresh_ones(
    spec: RFTRunSpec, layout: Layout
) -> None:
    """training.lrSchedule unset: linear for sft/dpo (epochs over one set), constant for grpo."""
    status = RFTRunStatus()
    assert train_config(spec, status, RUN.name, 0, layout).lr_schedule == "linear"
    training = spec.training.model_copy(update={"method": "grpo"})
    grpo = spec.model_copy(update={"training": training})
    assert train_config(grpo, status, RUN.name, 0, layout).lr_schedule == "constant"
    chosen = spec.model_copy(
        update={"training": spec.training.model_copy(update={"lr_schedule": "constant"})}
    )
    assert train_config(chosen, status, RUN.name, 0, layout).lr_schedule == "constant"


def test_the_next_policy_is_the_checkpoint_training_writes(
    spec: RFTRunSpec, layout: Layout
) -> None:
    status = RFTRunStatus()
    train = train_config(spec, status, RUN.name, 0, layout)
    written = IterationPaths(train.output_dir).checkpoint  # where the runtime saves it
    summary = TrainSummary(iteration=0, checkpoint=written, seconds={keys.TRAINING_SECONDS: 7.0})
    progress.record_training(spec, status, 0, summary, layout.uri_of(written), "now")
    assert serve_config(spec, status, 1, layout).model_path == written
    assert status.iterations and status.iterations[0].durations == {progress.TRAINING: 7.0}


def test_pods_get_the_config_and_the_names_the_runtime_reads(
    spec: RFTRunSpec, layout: Layout, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    status = RFTRunStatus()
    score = score_config(spec, RUN.name, 0, layout)
    job = build_score_job(RUN, spec, 0, score)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert f"env:{env.CONFIG_ENV}" == CONFIG_ARG and CONFIG_ARG in container["command"]
    variables = _container_env(job)
    assert variables[env.TERMINATION_LOG_ENV]["value"] == paths.TERMINATION_LOG
    assert variables["HF_HOME"]["value"] == paths.HF_HOME
    _pod_env(job, monkeypatch)
    assert load_config(ScoreJobConfig, CONFIG_ARG) == score
    # the scoring Job asks the sampler for the model name the sampler serves
    assert serve_config(spec, status, 0, layout).served_model_name == score.policy.model
    assert score.policy.base_url == layout.sampler_url(sampler_of(spec, RUN.name, 0))
    # the long-lived sampler watches the file the scoring Job writes, and reports where it looks
    serve = serve_config(spec, status, 0, layout)
    assert score.policy_sync is not None and serve.policy_file == score.policy_sync.policy_file
    assert serve.loaded_dir == score.policy_sync.loaded_dir
    assert score.policy_sync.policy_path == serve.model_path
    # the teacher's key: the config names the variable the manifest fills from the Secret
    assert score.teacher is not None and score.teacher.api_key_env == env.TEACHER_API_KEY_ENV
    client = EndpointClient(score.teacher)  # reads the key, fails when it is not there
    asyncio.run(client.aclose())
    # each judge's key: the variable the judge reward reads
    judges = [r for r in spec.rewards if r.judge and r.judge.api_key_secret_ref]
    assert judges
    for reward in judges:
        assert "secretKeyRef" in variables[env.judge_api_key_env(reward.name)]["valueFrom"]
    secrets = {n for n, e in variables.items() if "secretKeyRef" in e.get("valueFrom", {})}
    assert secrets == {env.TEACHER_API_KEY_ENV} | {env.judge_api_key_env(r.name) for r in judges}

    sampler = build_sampler_deployment(RUN, spec, 0, serve_config(spec, status, 0, layout))
    sampler_vars = _container_env(sampler)
    for name, folder in env.SAMPLER_CACHE_ENV.items():
        assert sampler_vars[name]["value"] == folder
        assert Path(folder).is_relative_to(paths.STORAGE_MOUNT)  # kept on the run storage

    train = train_config(spec, status, RUN.name, 0, layout)
    train_job = build_train_job(RUN, spec, 0, train)
    train_vars = _container_env(train_job)
    assert train_vars[env.OPS_CACHE_ENV]["value"] == paths.OPS_CACHE
    assert train_vars[env.TORCH_EXTENSIONS_ENV]["value"] == paths.POD_EXTENSIONS_DIR
    _pod_env(train_job, monkeypatch)
    assert load_config(TrainJobConfig, CONFIG_ARG) == train
    # the topology the pods run with is the one the config gives the training job
    assert train_job["spec"]["completions"] == train_job["spec"]["parallelism"] == train.nodes
    mounts = {
        m["mountPath"]
        for m in train_job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert paths.STORAGE_MOUNT in mounts


def test_eval_score_keys_are_the_ones_the_operator_reads(spec: RFTRunSpec, layout: Layout) -> None:
    config = score_config(spec, RUN.name, 1, layout)
    assert config.evaluation is not None and spec.evaluation is not None
    metrics = {
        s.name: {keys.pass_at(k): 0.1 * (i + 1) + 0.01 * k for k in config.evaluation.pass_at_k}
        for i, s in enumerate(config.evaluation.sets)
    }
    scores, primary = summary_scores(config, metrics)  # what the scoring Job reports
    names = [s.name for s in spec.evaluation.sets]
    expected = {keys.score_key(n, k) for n in names for k in spec.evaluation.pass_at_k}
    assert set(scores) == expected
    key = keys.primary_key(names, spec.evaluation.pass_at_k)
    assert key is not None and primary == scores[key]
    status = RFTRunStatus()
    summary = ScoreSummary(
        iteration=1,
        eval_scores=scores,
        eval_score=None,  # the operator finds the same primary score on its own
        seconds={keys.EVALUATION_SECONDS: 3.0, keys.SAMPLING_SECONDS: 5.0},
    )
    progress.record_score(spec, status, 1, summary, "now")
    done = progress.find(status, 0)
    assert done is not None and done.eval_score == primary
    assert done.durations == {progress.EVALUATION: 3.0}
    # the regression guards read keys the scoring Job wrote
    assert progress.guard_violation(spec, status, scores) is None


def test_one_termination_message_writer_reader_and_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv(env.TERMINATION_LOG_ENV, str(log))
    big = ScoreSummary(
        iteration=1,
        eval_scores={keys.score_key(f"set{i}", 1): 0.5 for i in range(400)},
        seconds={keys.SAMPLING_SECONDS: 1.0},
    )
    assert termination.write_termination(big) == log
    assert len(log.read_bytes()) < termination.TERMINATION_LIMIT
    assert kubelet_controller.TERMINATION_LIMIT is termination.TERMINATION_LIMIT  # type: ignore[attr-defined]
    read = termination.read_termination(log.read_bytes())
    assert read is not None and ScoreSummary.model_validate(read).iteration == 1
    failure = FailureSummary(reason="OutOfMemory", message="x" * 10_000)
    termination.write_termination(failure)
    assert len(log.read_bytes()) < termination.TERMINATION_LIMIT
    pod: dict[str, Any] = {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": "j"}},
        "status": {
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 1, "message": log.read_text()}}}
            ]
        },
    }
    _, text = job_summary("j", [pod])
    assert text is not None and text.startswith("OutOfMemory: xxx")
    # a reason the planner acts on survives the round trip through the pod status
    termination.write_termination(FailureSummary(reason=termination.INVALID_DATA, message="m"))
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = log.read_text()
    _, text = job_summary("j", [pod])
    assert text is not None and termination.failed_with(text, termination.INVALID_DATA)
    assert json.loads(log.read_text())["kind"] == "error"


def test_evaluation_keeps_as_many_sequences_in_flight_as_sampling(
    spec: RFTRunSpec, layout: Layout, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A greedy pass sends one sequence per request: at the sampling concurrency it would
    batch 8x fewer sequences than sampling does on the same server (measured ~290 against
    ~500 tokens/s on 2 CPUs)."""
    assert eval_concurrency(16, 8, 1) == 128
    assert eval_concurrency(16, 8, 4) == 32
    assert eval_concurrency(16, 1, 4) == 16  # never below the configured concurrency
    score = score_config(spec, RUN.name, 0, layout)
    assert score.evaluation is not None and spec.evaluation is not None
    expected = spec.sampler.concurrency * spec.sampler.samples_per_prompt
    assert score.evaluation.concurrency == expected // spec.evaluation.samples_per_prompt
    used: list[int] = []

    async def fake_pass(config: Any, endpoint: Any, *args: Any, **kwargs: Any) -> Any:
        used.append(endpoint.concurrency)
        return [], score_job.PassStats()

    monkeypatch.setattr(score_job, "_pass", fake_pass)
    monkeypatch.setattr(score_job, "atomic_write_jsonl", lambda *args: None)
    monkeypatch.setattr(score_job, "eval_metrics", lambda *args: {})
    out = IterationPaths(str(tmp_path))
    asyncio.run(score_job.evaluate(score, out, {}))
    assert used == [score.evaluation.concurrency] * len(score.evaluation.sets)
    assert score.policy.concurrency == spec.sampler.concurrency  # sampling keeps its own

"""GRPO for real: the training Job (DeepSpeed + LoRA on SmolLM2-135M, launched as the pod
launches it) samples groups through a real long-lived vLLM sampler, scores them, steps, and
publishes every policy into the sampler; killed mid-way, it resumes to the same number of
steps. Small on purpose (a few steps of 4 prompts x 4 completions): it proves the
mechanics; the learning curve is a benchmark's job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from rft_runtime.policy_sync import pods_serving, requested_policy

from . import test_score_server as base
from .test_score_server import Server
from .test_train import REPO, command, env, launch_nodes

pytestmark = pytest.mark.slow

sampler = base.server  # the same module-scoped fixture: one vLLM server for this module
prompts = base.arithmetic

STEPS = 4


def grpo_config(
    tmp: Path, model: Path, server: Server, data: Path, steps: int = STEPS, **grpo: Any
) -> Path:
    sync = server.config
    config = {
        "run": "arith",
        "iteration": 0,
        "method": "grpo",
        "initModelPath": str(model),
        "outputDir": str(tmp / "out"),
        "learningRate": 1e-4,
        "batchSize": 16,
        "maxSeqLen": 128,
        "checkpointEverySteps": 1,
        "grpo": {
            "params": {
                "groupSize": 4,
                "promptsPerStep": 4,
                "stepsPerIteration": steps,
                **grpo,
            },
            "policy": {"baseUrl": server.base_url, "model": "policy", "startupWaitSeconds": 60},
            "policySync": {
                "policyFile": sync.policy_file,
                "loadedDir": sync.loaded_dir,
                "policyPath": str(model),
                "timeoutSeconds": 300,
            },
            "prompts": {"path": str(data), "promptField": "question", "idField": "id"},
            "promptFormat": {"systemPrompt": "Reply with the number only."},
            "sampling": {"n": 4, "temperature": 1.0, "maxTokens": 48},
            "rewards": [{"name": "answer", "type": "math", "weight": 1.0}],
        },
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def start(tmp: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen(
            command(config), cwd=REPO, env=env(tmp), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def test_grpo_steps_through_the_sampler_and_a_killed_run_resumes(
    small_model: Path, sampler: Server, prompts: Path, tmp_path: Path
) -> None:
    server = sampler
    config = grpo_config(tmp_path, small_model, server, prompts, **{"async": True})
    out = tmp_path / "out"
    latest = out / "train-state" / "latest"
    first = start(tmp_path, config, tmp_path / "first.log")
    deadline = time.time() + 600
    while not latest.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert latest.exists(), (tmp_path / "first.log").read_text()[-4000:]
    assert not (out / "checkpoint").exists()  # killed before the end

    second = start(tmp_path, config, tmp_path / "second.log")
    assert second.wait(timeout=900) == 0, (tmp_path / "second.log").read_text()[-4000:]
    metrics = json.loads((out / "train-metrics.json").read_text())
    history = metrics["history"]
    assert metrics["finished"] and metrics["steps"] == STEPS
    assert 1 <= metrics["resumed_from_step"] < STEPS
    assert [h["step"] for h in history] == list(range(1, STEPS + 1))
    for h in history:
        assert h["completions"] == 16 and 0.0 <= h["reward_mean"] <= 1.0
        assert 0.0 <= h["zero_signal_fraction"] <= 1.0 and h["completion_tokens"] > 0
        assert h["generation_seconds"] > 0 and h["training_seconds"] > 0
    resumed = metrics["resumed_from_step"]
    # async: each batch comes from the policy one step old, except the first of each process
    lags = [h["policy_lag"] for h in history]
    assert lags[0] == 0 and lags[resumed] == 0, lags
    assert all(lag == 1 for i, lag in enumerate(lags) if i not in (0, resumed)), lags
    # every step's policy was published into the sampler; the last is checkpoint/, served
    checkpoint = str(out / "checkpoint")
    assert (out / "checkpoint" / "model.safetensors").exists()
    assert requested_policy(server.config.policy_file or "") == checkpoint
    assert pods_serving(server.config.loaded_dir or "", checkpoint)
    assert not (out / "policy-steps").exists()
    published = (tmp_path / "second.log").read_text()
    assert f"published {out}/policy-steps/step-{resumed} " in published  # restored, re-served
    summary = json.loads((tmp_path / "termination-log").read_text())
    assert summary["kind"] == "train" and summary["steps"] == STEPS
    assert summary["samples"] == 16 * STEPS and summary["policyLag"] == 1
    assert {"generation", "scoring", "policy_sync", "train"} <= set(summary["seconds"])


def test_grpo_on_two_nodes_splits_each_steps_prompts(
    small_model: Path, sampler: Server, prompts: Path, tmp_path: Path
) -> None:
    """Two 'pods' of the Indexed training Job: each rank samples and scores its half of a
    step's prompts, the gradients are averaged, rank 0 publishes the policy."""
    steps = 2
    config = grpo_config(tmp_path, small_model, sampler, prompts, steps=steps)
    codes = launch_nodes(tmp_path, config, 2, timeout=900)
    assert codes == [0, 0], (tmp_path / "node1.log").read_text()[-4000:]
    metrics = json.loads((tmp_path / "out" / "train-metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["finished"]
    assert metrics["prompts_per_step"] == 4  # 2 per rank
    assert [h["step"] for h in metrics["history"]] == [1, 2]
    assert all(h["completions"] == 16 for h in metrics["history"])  # both ranks' groups
    for rank in ("0", "1"):
        summary = json.loads((tmp_path / f"termination-log-{rank}").read_text())
        assert summary["kind"] == "train" and summary["steps"] == steps
    node0 = (tmp_path / "node0.log").read_text()
    assert f"published {tmp_path / 'out'}/policy-steps/step-1 " in node0
    checkpoint = str(tmp_path / "out" / "checkpoint")
    assert pods_serving(sampler.config.loaded_dir or "", checkpoint)

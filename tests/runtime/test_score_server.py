"""The sampler and the scoring Job for real: `rft_runtime.serve` runs vLLM (CPU) on
SmolLM2-135M-Instruct, and `rft_runtime.score` evaluates, samples, rewards and filters
two-digit additions through it. The server starts once for the module (~90 s)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.config.jobs import FailureSummary, ScoreSummary, ServeConfig
from rft_runtime.policy_sync import pods_serving, wait_until_served
from rft_runtime.score import adaptive
from rft_runtime.score.passk import pass_at_k
from rft_runtime.serve import vllm_args, vllm_env

pytestmark = pytest.mark.slow

PROMPTS = 20
N = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log: Path, config: ServeConfig
    ) -> None:
        self.process, self.port, self.log, self.config = process, port, log, config
        self.base_url = f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def server(small_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    config = ServeConfig(  # long-lived: it watches a policy file (test_policy_reload...)
        model_path=str(small_model),
        host="127.0.0.1",
        port=port,
        max_model_len=512,
        policy_file=str(folder / "sampler" / "policy.json"),
        loaded_dir=str(folder / "sampler" / "loaded"),
    )
    (folder / "serve.json").write_text(config.model_dump_json(by_alias=True))
    log = folder / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "rft_runtime.serve", "--config", str(folder / "serve.json")],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2"},
        )
    deadline = time.monotonic() + 600
    while True:
        if process.poll() is not None:
            pytest.fail(f"server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"server not ready in 600 s:\n{log.read_text()[-3000:]}")
        time.sleep(2)
    yield Server(process, port, log, config)
    if process.poll() is None:  # SIGTERM: the wrapper stops vLLM (a SIGKILL orphaned it)
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def arithmetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("data") / "arith.jsonl"
    with path.open("w") as handle:
        for i in range(PROMPTS):
            a, b = rng.randint(10, 99), rng.randint(10, 99)
            handle.write(json.dumps({"id": f"q{i}", "question": f"{a} + {b} = ?", "answer": a + b}))
            handle.write("\n")
    return path


def score_config(server: Server, prompts: Path, out: Path, **overrides: Any) -> dict[str, Any]:
    source = {"path": str(prompts), "promptField": "question", "idField": "id"}
    config: dict[str, Any] = {
        "run": "arith",
        "iteration": 0,
        "outputDir": str(out),
        "policy": {"baseUrl": server.base_url, "model": "policy", "startupWaitSeconds": 60},
        "promptFormat": {"systemPrompt": "Reply with the number only."},
        "train": source,
        "sampling": {"n": N, "temperature": 1.0, "maxTokens": 48},
        "rewards": [
            {"name": "answer", "type": "math", "weight": 1.0},
            {"name": "has-number", "type": "regex", "pattern": r"\d", "weight": 0.1, "gate": True},
        ],
        "filter": {"maxPerPrompt": 2, "dedup": True, "rejected": "lowest"},
        "minReward": 1.0,
    }
    config.update(overrides)
    return config


def run_score(config: dict[str, Any], folder: Path, **kwargs: Any) -> subprocess.Popen[str]:
    path = folder / "score.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, "RFT_TERMINATION_LOG": str(folder / "termination-log")}
    return subprocess.Popen(
        [sys.executable, "-m", "rft_runtime.score", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_eval_and_sampling_write_every_output(
    server: Server, arithmetic: Path, tmp_path: Path
) -> None:
    evaluation = {
        "sets": [{"name": "arith", "source": {"path": str(arithmetic), "promptField": "question"}}],
        "passAtK": [1, 4],
        "samplesPerPrompt": 4,
        "temperature": 0.7,
        "maxTokens": 32,
    }
    out = tmp_path / "it-0"
    job = run_score(score_config(server, arithmetic, out, evaluation=evaluation), tmp_path)
    stdout, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-3000:]

    # every completion, with the per-reward breakdown, consistent with the weights and gate
    samples = read_jsonl(out / "samples.jsonl")
    assert len(samples) == PROMPTS * N
    assert Counter(s["prompt_id"] for s in samples) == {f"q{i}": N for i in range(PROMPTS)}
    for s in samples:
        assert set(s["rewards"]) == {"answer", "has-number"}
        expected = 0.0 if s["rewards"]["has-number"] == 0 else 1.0 * s["rewards"]["answer"] + 0.1
        assert s["reward"] == pytest.approx(expected)
        assert s["finish_reason"] in {"stop", "length"}
        if s["rewards"]["answer"] == 0:
            assert s["reasons"].get("answer") or not s["kept"]

    # kept = passing the threshold, at most 2 per prompt, deduplicated
    sft = read_jsonl(out / "sft.jsonl")
    assert sft, "the 135M model solves some additions when sampled 4 times"
    assert all(row["reward"] >= 1.0 for row in sft)
    assert max(Counter(row["prompt_id"] for row in sft).values()) <= 2
    assert all([m["role"] for m in row["messages"]] == ["system", "user"] for row in sft)
    assert all(isinstance(row["completion"], str) for row in sft)
    assert len({(r["prompt_id"], r["completion"]) for r in sft}) == len(sft)
    assert sum(s["kept"] for s in samples) == len(sft)
    for pair in read_jsonl(out / "dpo.jsonl"):
        assert pair["chosen_reward"] > pair["rejected_reward"]

    # evaluation: pass@1 and pass@4 recomputed from the per-prompt file
    rows = read_jsonl(out / "eval" / "arith.jsonl")
    assert len(rows) == PROMPTS and all(r["n"] == 4 for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    arith = metrics["eval"]["arith"]
    assert arith["pass@1"] == pytest.approx(sum(r["correct"] for r in rows) / (4 * PROMPTS))
    pass4 = sum(pass_at_k(4, r["correct"], 4) for r in rows) / PROMPTS
    assert arith["pass@4"] == pytest.approx(pass4)
    assert arith["pass@4"] >= arith["pass@1"]
    train = metrics["train"]
    assert train["samples"] == PROMPTS * N and train["kept"] == len(sft)
    assert train["tokens"] > PROMPTS * N and train["tokens_per_second"] > 0
    assert train["pass_rate"] == pytest.approx(
        sum(s["reward"] >= 1 for s in samples) / len(samples)
    )
    assert 0 < train["prompts_with_correct"] <= PROMPTS
    assert set(metrics["seconds"]) == {"evaluation", "sampling", "total"}

    # the termination message is the operator's view of the same numbers
    message = (tmp_path / "termination-log").read_text()
    assert len(message.encode()) < 4096
    summary = ScoreSummary.model_validate_json(message)
    assert summary.accepted == len(sft) and summary.samples == PROMPTS * N
    assert summary.eval_scores == {
        "arith/pass@1": pytest.approx(arith["pass@1"]),
        "arith/pass@4": pytest.approx(arith["pass@4"]),
    }
    assert summary.eval_score == pytest.approx(arith["pass@1"])
    assert set(summary.seconds) == {"evaluation", "sampling"}
    assert summary.train_pass_rate == pytest.approx(train["pass_rate"])
    assert json.loads(stdout)["accepted"] == len(sft)


def test_unsolved_prompts_get_more_samples_then_a_hint_trained_without_it(
    server: Server, arithmetic: Path, tmp_path: Path
) -> None:
    """sampler.unsolvedExtraSamples and sampler.rationalize through the real scoring Job."""
    out = tmp_path / "out"
    sampling = {
        "n": 2,
        "temperature": 1.0,
        "maxTokens": 48,
        "unsolvedExtraSamples": 2,
        "hintTemplate": "{prompt}\nHint: the answer is {answer}.",
        "hintSamples": 2,
    }
    config = score_config(server, arithmetic, out, sampling=sampling)
    job = run_score(config, tmp_path)
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-3000:]
    samples = read_jsonl(out / "samples.jsonl")
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for sample in samples:
        by_prompt.setdefault(sample["prompt_id"], []).append(sample)
    first_unsolved = {p for p, rows in by_prompt.items() if not any(r["correct"] for r in rows[:2])}
    assert first_unsolved, "the 135M model misses some additions in 2 samples"
    for prompt_id, rows in by_prompt.items():
        rounds = [r.get("round") for r in rows]
        assert rounds[:2] == [None, None]
        assert ("more" in rounds) == (prompt_id in first_unsolved)
        assert sorted(r["index"] for r in rows) == list(range(len(rows)))
        if "hint" in rounds:  # only where the extra samples found nothing either
            assert not any(r["correct"] for r in rows if r.get("round") != "hint")
    train = read_jsonl(out / "sft.jsonl")
    assert all("Hint" not in json.dumps(row["messages"]) for row in train)
    metrics = json.loads((out / "metrics.json").read_text())["train"]
    assert metrics["more_prompts"] == len(first_unsolved)
    first_correct = sum(r["correct"] for rows in by_prompt.values() for r in rows[:2])
    assert metrics["pass_rate"] == pytest.approx(first_correct / (2 * len(by_prompt)))


def test_adaptive_sampling_asks_the_second_half_only_of_unsettled_prompts(
    server: Server, arithmetic: Path, tmp_path: Path
) -> None:
    """sampler.adaptive through the real scoring Job: half the samples first; the rest only
    for prompts neither settled by enough kept answers nor too easy; then the hint round for
    prompts still unsolved."""
    out = tmp_path / "out"
    sampling = {
        "n": 4,
        "temperature": 1.0,
        "maxTokens": 48,
        "adaptive": True,
        "hintTemplate": "{prompt}\nHint: the answer is {answer}.",
        "hintSamples": 2,
    }
    spec = {"maxPerPrompt": 1, "dedup": True, "dropTruncated": False}
    # "correct" = the answer starts with a digit: about a third of the 135M model's answers
    # here, so some prompts settle in round 1 (one such answer of two: p ~ 0.55) and some
    # do not, whatever the sample (20 prompts: both kinds but for ~1e-5)
    rewards = [{"name": "digit-first", "type": "regex", "pattern": r"^\s*\d", "weight": 1.0}]
    config = score_config(server, arithmetic, out, sampling=sampling, filter=spec, rewards=rewards)
    job = run_score(config, tmp_path)
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr[-3000:]
    by_prompt: dict[str, list[dict[str, Any]]] = {}
    for sample in read_jsonl(out / "samples.jsonl"):
        by_prompt.setdefault(sample["prompt_id"], []).append(sample)
    assert len(by_prompt) == PROMPTS
    filter_spec = FilterSpec.model_validate(spec)
    asked_again = set()
    for prompt_id, rows in by_prompt.items():
        rounds = [r.get("round") for r in rows]
        assert rounds[:2] == [None, None]  # the first round: ceil(4 / 2) samples
        first = {"id": prompt_id, "completions": rows[:2]}
        settled = adaptive.is_settled(first, filter_spec, 1.0)
        assert rounds.count("rest") == (0 if settled else 2), (prompt_id, rounds)
        if not settled:
            asked_again.add(prompt_id)
        solved_unhinted = any(r["correct"] for r in rows if r.get("round") != "hint")
        assert ("hint" in rounds) == (not solved_unhinted)
        if not any(r["correct"] for r in rows[:2]):
            assert "rest" in rounds  # unsolved: it samples on before any hint
    metrics = json.loads((out / "metrics.json").read_text())["train"]
    assert metrics["rest_prompts"] == len(asked_again)
    assert metrics["samples"] == sum(len(rows) for rows in by_prompt.values())
    assert 0 < len(asked_again) < PROMPTS, "some prompts solved in round 1, some not"
    assert metrics["samples"] < PROMPTS * 4 + metrics.get("hint_samples", 0)


def test_killed_job_resumes_and_scores_every_prompt_once(
    server: Server, arithmetic: Path, tmp_path: Path
) -> None:
    out = tmp_path / "it-0"
    config = score_config(server, arithmetic, out)
    config["policy"]["concurrency"] = 1  # one prompt at a time, so we can kill it halfway
    progress = out / "progress" / "train.jsonl"
    first = run_score(config, tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    while not progress.exists() or progress.read_text().count("\n") < 5:
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = progress.read_bytes()
    recorded = before.count(b"\n")
    assert 5 <= recorded < PROMPTS, "the job must be killed halfway"
    assert not (out / "samples.jsonl").exists()

    second = run_score(config, tmp_path)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-3000:]
    assert f"[sample] {recorded}/{PROMPTS} prompts" in stderr  # it resumed, not restarted

    after = progress.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # first run's records intact
    ids = [json.loads(line)["id"] for line in after.decode().splitlines()]
    assert sorted(ids) == sorted(f"q{i}" for i in range(PROMPTS))  # each exactly once
    samples = read_jsonl(out / "samples.jsonl")
    assert Counter(s["prompt_id"] for s in samples) == {f"q{i}": N for i in range(PROMPTS)}
    train = json.loads((out / "metrics.json").read_text())["train"]
    assert 0 < train["tokens_this_run"] < train["tokens"]


def test_wrong_model_name_is_a_setup_error(
    server: Server, arithmetic: Path, tmp_path: Path
) -> None:
    """vLLM answers 404 for an unknown model: fail fast, record nothing to resume from."""
    config = score_config(server, arithmetic, tmp_path / "out")
    config["policy"]["model"] = "no-such-model"
    job = run_score(config, tmp_path)
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 1, stderr[-2000:]
    summary = FailureSummary.model_validate_json((tmp_path / "termination-log").read_text())
    assert summary.reason == "EndpointRejected" and "404" in summary.message
    progress = tmp_path / "out" / "progress" / "train.jsonl"
    assert not progress.exists() or progress.read_text() == ""


def test_serve_command_line() -> None:
    config = ServeConfig(model_path="/m", port=8123, max_model_len=512, served_model_name="p")
    args = vllm_args(config, python="py")
    assert args[:3] == ["py", "-m", "vllm.entrypoints.openai.api_server"]
    pairs = dict(zip(args[3::2], args[4::2], strict=False))
    assert pairs["--model"] == "/m" and pairs["--port"] == "8123"
    assert pairs["--max-model-len"] == "512" and pairs["--served-model-name"] == "p"
    assert "--gpu-memory-utilization" not in args  # CPU: the KV cache env var sizes it
    assert vllm_env(config, {})["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert vllm_env(config, {"VLLM_CPU_KVCACHE_SPACE": "2"})["VLLM_CPU_KVCACHE_SPACE"] == "2"
    cuda = ServeConfig(model_path="/m", device="cuda", gpu_memory_utilization=0.5)
    assert "0.5" in vllm_args(cuda) and "VLLM_CPU_KVCACHE_SPACE" not in vllm_env(cuda, {})


def test_small_cpu_pods_compute_on_every_core() -> None:
    """vLLM would keep one of a small pod's cores for its front end; a big node keeps its
    own NUMA-aware binding, and a binding the user set wins."""
    config = ServeConfig(model_path="/m")
    assert vllm_env(config, {}, cpu_ids=[0, 1])["VLLM_CPU_OMP_THREADS_BIND"] == "0,1"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in vllm_env(config, {}, cpu_ids=list(range(64)))
    user = {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    assert vllm_env(config, user, cpu_ids=[0, 1])["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    cuda = ServeConfig(model_path="/m", device="cuda")
    assert "VLLM_CPU_OMP_THREADS_BIND" not in vllm_env(cuda, {}, cpu_ids=[0])


def test_cpu_samplers_use_the_compile_cache_that_loads() -> None:
    """The AOT artifact of vLLM's CPU build fails to load, so every start would compile
    again; the per-graph cache loads. A user's setting wins."""
    config = ServeConfig(model_path="/m", device="cpu")
    assert vllm_env(config, {})["VLLM_USE_AOT_COMPILE"] == "0"
    assert vllm_env(config, {"VLLM_USE_AOT_COMPILE": "1"})["VLLM_USE_AOT_COMPILE"] == "1"
    cuda = ServeConfig(model_path="/m", device="cuda")
    assert "VLLM_USE_AOT_COMPILE" not in vllm_env(cuda, {})


def perturbed_copy(model: Path, out: Path) -> Path:
    """The model with layer 0's input norm zeroed: other weights, other KV, other answers."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, out)
    weights = load_file(out / "model.safetensors")
    weights["model.layers.0.input_layernorm.weight"].zero_()
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


def greedy(server: Server, prompt: str) -> str:
    body = {"model": "policy", "prompt": prompt, "max_tokens": 12, "temperature": 0.0}
    answer = httpx.post(f"{server.base_url}/completions", json=body, timeout=120)
    answer.raise_for_status()
    return str(answer.json()["choices"][0]["text"])


def test_policy_reload_swaps_weights_in_place_and_forgets_cached_prefixes(
    server: Server, small_model: Path, tmp_path: Path
) -> None:
    """What every scoring Job of a long-lived sampler does: ask for a policy, wait until it
    is served. The same prompt before, under the other weights and back again: the prefix
    cache must not hand the other weights' KV to the base model (it is reset on reload)."""
    config = server.config
    assert config.policy_file and config.loaded_dir
    prompt = "Question: what is 12 + 30? Answer:"
    before = greedy(server, prompt)
    other = perturbed_copy(small_model, tmp_path / "other")
    started = server.process.pid
    waited = wait_until_served(config.policy_file, config.loaded_dir, str(other), 1, 300)
    assert waited < 300 and pods_serving(config.loaded_dir, str(other))
    changed = greedy(server, prompt)
    assert changed != before and greedy(server, prompt) == changed
    wait_until_served(config.policy_file, config.loaded_dir, str(small_model), 1, 300)
    assert greedy(server, prompt) == before
    assert server.process.pid == started and server.process.poll() is None  # no restart
    assert "[policy] loaded" in server.log.read_text()


def test_serve_shuts_down_on_sigterm(server: Server) -> None:
    """Last in the module: SIGTERM reaches vLLM, which exits and leaves no child behind."""
    children = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
    ).stdout.split()
    assert children, "rft_runtime.serve runs vLLM as a child process"
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=120)
    assert code in (0, 128 + signal.SIGTERM), server.log.read_text()[-2000:]
    time.sleep(1)
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )

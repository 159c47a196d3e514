"""The training Job for real: SmolLM2-135M, PEFT and DeepSpeed on CPU, through the same
launcher command the operator puts in the pod (`rft_runtime.commands.train_command`)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rft_runtime.commands import train_command

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SYSTEM = {"role": "system", "content": "Answer with the number only."}


def arithmetic(n: int, seed: int = 0) -> list[tuple[list[dict], int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        wrong = a + b + rng.randint(1, 9)
        out.append(([SYSTEM, {"role": "user", "content": f"What is {a} + {b}?"}], a + b, wrong))
    return out


def write_sft(path: Path, n: int) -> Path:
    rows = [
        {"prompt_id": f"p{i}", "messages": m, "completion": f"The answer is {s}.", "reward": 1.0}
        for i, (m, s, _) in enumerate(arithmetic(n))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_dpo(path: Path, n: int) -> Path:
    rows = [
        {
            "prompt_id": f"p{i}",
            "messages": m,
            "chosen": f"{s}",
            "rejected": f"{w}",
            "chosen_reward": 1.0,
            "rejected_reward": 0.0,
        }
        for i, (m, s, w) in enumerate(arithmetic(n, seed=1))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, model: Path, dataset: Path, **overrides) -> Path:
    config = {
        "run": "t",
        "iteration": 0,
        "datasetPath": str(dataset),
        "initModelPath": str(model),
        "outputDir": str(tmp / "out"),
        "epochs": 1,
        "learningRate": 1e-3,
        "batchSize": 8,
        "maxSeqLen": 128,
        "seed": 0,
        **overrides,
    }
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def env(tmp: Path, name: str = "termination-log", **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "RFT_TERMINATION_LOG": str(tmp / name),
        "PYTHONPATH": str(REPO),
        **extra,
    }


def command(config: Path, nodes: int = 1, node_rank: str = "0", port: int = 0) -> list[str]:
    return train_command(
        str(config),
        nodes=nodes,
        gpus_per_node=0,
        node_rank=node_rank,
        master_port=port or free_port(),
        launcher=str(BIN / "deepspeed"),
        python=sys.executable,
    )


def launch_nodes(tmp: Path, config: Path, nodes: int, timeout: float) -> list[int]:
    """The pods of an Indexed training Job on this machine, one rank each (gloo over
    localhost), each with its own termination log and tmp/node<rank>.log; their exit codes."""
    port = free_port()
    procs = []
    for rank in map(str, range(nodes)):
        with (tmp / f"node{rank}.log").open("w") as log:
            procs.append(
                subprocess.Popen(
                    command(config, nodes=nodes, node_rank=rank, port=port),
                    cwd=REPO,
                    env=env(tmp, f"termination-log-{rank}", OMP_NUM_THREADS="1"),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return [p.wait(timeout=timeout) for p in procs]


def launch(tmp: Path, config: Path, timeout: float = 600) -> dict:
    """Run the training Job to the end; return its train-metrics.json."""
    log = tmp / "train.log"
    with log.open("w") as out:
        proc = subprocess.run(
            command(config), cwd=REPO, env=env(tmp), stdout=out, stderr=subprocess.STDOUT,
            timeout=timeout,
        )  # fmt: skip
    assert proc.returncode == 0, log.read_text()[-4000:]
    return json.loads((tmp / "out" / "train-metrics.json").read_text())


def losses(metrics: dict, key: str = "loss") -> list[float]:
    return [h[key] for h in metrics["history"]]


@pytest.fixture(scope="module")
def sft_run(small_model: Path, tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("sft")
    config = write_config(tmp, small_model, write_sft(tmp / "sft.jsonl", 32))
    return tmp, launch(tmp, config)


def test_sft_lora_lowers_loss(sft_run):
    tmp, metrics = sft_run
    assert metrics["steps"] == 4 and len(metrics["history"]) == 4  # 32 rows / batch 8
    # training.lrSchedule linear (the sft default): 1e-3 down to a quarter of it
    assert losses(metrics, "lr") == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    curve = losses(metrics)
    assert curve[-1] < 0.7 * curve[0], curve
    assert metrics["tokens_per_second"] > 0 and metrics["truncated"] == 0
    summary = json.loads((tmp / "termination-log").read_text())
    assert summary["kind"] == "train" and summary["steps"] == 4
    assert summary["checkpoint"] == str(tmp / "out" / "checkpoint")
    assert summary["finalLoss"] == pytest.approx(curve[-1])


def test_checkpoint_loads_in_transformers(sft_run, small_model):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = sft_run[0] / "out" / "checkpoint"
    assert not list(checkpoint.parent.glob(".checkpoint.*"))  # temp dir renamed away
    tensors = load_file(checkpoint / "model.safetensors")
    assert not any("lora" in k for k in tensors)  # merged, plain weights
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}  # the init model's dtype
    init = load_file(small_model / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(tensors[key], init[key])  # the adapter was merged in
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.chat_template
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    messages = [SYSTEM, {"role": "user", "content": "What is 12 + 30?"}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert text.startswith("The answer is"), text  # it learned the SFT format


VLLM_SCRIPT = textwrap.dedent(
    """
    import sys
    from vllm import LLM, SamplingParams

    if __name__ == "__main__":
        llm = LLM(model=sys.argv[1], max_model_len=256, dtype="bfloat16", enforce_eager=True)
        params = SamplingParams(temperature=0.0, max_tokens=8)
        messages = [{"role": "user", "content": "What is 12 + 30?"}]
        out = llm.chat(messages, params)
        print("GENERATED:" + repr(out[0].outputs[0].text), flush=True)
    """
)


def test_checkpoint_loads_in_vllm(sft_run):
    tmp = sft_run[0]
    script = tmp / "vllm_check.py"
    script.write_text(VLLM_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp / "out" / "checkpoint")],
        env=env(tmp, VLLM_CPU_KVCACHE_SPACE="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("GENERATED:"))
    assert len(line) > len("GENERATED:''")


def implicit_margin(policy: Path, reference: Path, dataset: Path, beta: float) -> float:
    """Mean beta * ((log pi - log ref)(chosen) - (log pi - log ref)(rejected)) over all pairs."""
    import torch

    from rft_runtime.train import data as D
    from rft_runtime.train.loading import load_model, load_tokenizer
    from rft_runtime.train.losses import sequence_logps

    tokenizer = load_tokenizer(str(reference))
    pairs = D.tokenize(D.read_rows(dataset), tokenizer, "dpo", 128).examples
    batch = D.batch_for(pairs, list(range(len(pairs))), tokenizer.pad_token_id)
    logps = []
    for path in (policy, reference):
        model = load_model(str(path), torch.float32).eval()
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logps.append(sequence_logps(logits.logits, batch["labels"])[0])
    diff = logps[0] - logps[1]
    n = len(pairs)
    return float(beta * (diff[:n] - diff[n:]).mean())


def test_dpo_lora_raises_margin(small_model, tmp_path):
    dataset = write_dpo(tmp_path / "dpo.jsonl", 16)
    config = write_config(
        tmp_path, small_model, dataset, method="dpo", batchSize=4, beta=0.1, learningRate=5e-4
    )
    metrics = launch(tmp_path, config)
    margins = losses(metrics, "margin")
    assert len(margins) == 4
    assert margins[0] == pytest.approx(0.0, abs=1e-4)  # policy == reference at the start
    # the merged checkpoint against the init model (the reference), over every pair
    margin = implicit_margin(tmp_path / "out" / "checkpoint", small_model, dataset, beta=0.1)
    assert margin > 0.02, (margin, margins)


def test_killed_run_resumes_to_same_total_steps(small_model, tmp_path):
    config = write_config(
        tmp_path, small_model, write_sft(tmp_path / "sft.jsonl", 32), batchSize=4,
        checkpointEverySteps=2,
    )  # fmt: skip
    latest = tmp_path / "out" / "train-state" / "latest"
    with (tmp_path / "first.log").open("w") as log:
        proc = subprocess.Popen(
            command(config), cwd=REPO, env=env(tmp_path), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 400
        while not latest.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert latest.exists(), (tmp_path / "first.log").read_text()[-3000:]
    assert not (tmp_path / "out" / "checkpoint").exists()  # killed before the end
    metrics = launch(tmp_path, config)
    assert metrics["steps"] == 8  # 32 rows / batch 4, one epoch
    assert 2 <= metrics["resumed_from_step"] < 8
    assert metrics["steps_this_run"] == 8 - metrics["resumed_from_step"]
    assert [h["step"] for h in metrics["history"]] == list(range(1, 9))
    # the learning-rate schedule resumes where it stopped, not from the top
    assert losses(metrics, "lr") == pytest.approx([1e-3 * (8 - i) / 8 for i in range(8)])
    assert (tmp_path / "out" / "checkpoint" / "model.safetensors").exists()


def test_two_nodes_one_rank_each(small_model, tmp_path):
    """Two 'pods' of an Indexed Job on one machine: node ranks 0 and 1, gloo over localhost."""
    config = write_config(tmp_path, small_model, write_sft(tmp_path / "sft.jsonl", 16), batchSize=4)
    codes = launch_nodes(tmp_path, config, 2, timeout=600)
    assert codes == [0, 0], (tmp_path / "node1.log").read_text()[-3000:]
    metrics = json.loads((tmp_path / "out" / "train-metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["steps"] == 2  # 4 batches of 4 split over 2 ranks
    for rank in ("0", "1"):
        summary = json.loads((tmp_path / f"termination-log-{rank}").read_text())
        assert summary["kind"] == "train" and summary["steps"] == 2
    assert (tmp_path / "out" / "checkpoint" / "config.json").exists()


def test_full_weights_zero3_one_step(small_model, tmp_path):
    import torch
    from safetensors.torch import load_file

    config = write_config(
        tmp_path, small_model, write_sft(tmp_path / "sft.jsonl", 8), mode="full",
        learningRate=1e-4, deepspeed={"zeroStage": 3},
    )  # fmt: skip
    metrics = launch(tmp_path, config)
    assert metrics["steps"] == 1 and metrics["mode"] == "full"
    tensors = load_file(tmp_path / "out" / "checkpoint" / "model.safetensors")
    init = load_file(small_model / "model.safetensors")
    key = "model.layers.0.mlp.down_proj.weight"
    assert tensors[key].dtype == torch.bfloat16
    assert not torch.equal(tensors[key], init[key])

"""Training throughput: the DeepSpeed training Job vs. a plain PEFT + torch loop.

Both train the same LoRA adapter on the same length-grouped batches of the same model; the
DeepSpeed figure is the Job's own `tokens_per_second` (its training loop, including the
epoch-end train-state save), the plain one is timed here around the same number of steps.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_train.py [--rows 64] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rft_runtime.bundled_models import prepare
from rft_runtime.commands import train_command
from rft_runtime.config.jobs import TrainJobConfig
from rft_runtime.train import data as D
from rft_runtime.train.loading import cpu_autocast, load_tokenizer, lr_factor, policy_model
from rft_runtime.train.losses import sft_loss

REPO = Path(__file__).resolve().parents[1]


def write_dataset(path: Path, rows: int) -> None:
    rng = random.Random(0)
    lines = []
    for i in range(rows):
        a, b = rng.randint(2, 999), rng.randint(2, 999)
        messages = [{"role": "user", "content": f"What is {a} + {b}? Show the sum."}]
        completion = f"We add {a} and {b}. The answer is {a + b}."
        lines.append(json.dumps({"prompt_id": str(i), "messages": messages,
                                 "completion": completion, "reward": 1.0}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def deepspeed_run(config_path: Path, workdir: Path, gpus: int = 0) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = train_command(str(config_path), nodes=1, gpus_per_node=gpus, master_port=port,
                        launcher=str(Path(sys.executable).parent / "deepspeed"),
                        python=sys.executable)  # fmt: skip
    started = time.time()
    log = workdir / "train.log"
    with log.open("w") as out:
        code = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
    if code != 0:
        sys.exit(log.read_text()[-3000:])
    metrics = json.loads((workdir / "out" / "train-metrics.json").read_text())
    metrics["process_seconds"] = round(time.time() - started, 1)
    return metrics


def plain_run(cfg: TrainJobConfig, gpus: int = 0) -> dict:
    """The same steps with no DeepSpeed: PEFT model, torch AdamW with the Job's learning-rate
    schedule, no checkpoints, under bf16 autocast wherever the Job's precision auto uses it
    (GPU, or a CPU with native bf16)."""
    device = torch.device("cuda" if gpus else "cpu")
    autocast = bool(gpus) or cpu_autocast("auto", device.type)
    tokenizer = load_tokenizer(cfg.init_model_path)
    dataset = D.tokenize(D.read_rows(cfg.dataset_path), tokenizer, "sft", cfg.max_seq_len)
    torch.manual_seed(cfg.seed)
    model = policy_model(cfg, torch.float32).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    lengths = [e.length() for e in dataset.examples]
    steps = cfg.epochs * len(D.length_grouped_batches(lengths, cfg.batch_size, cfg.seed, 0))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.lr_schedule, steps))
    tokens, history, started = 0.0, [], time.time()
    for epoch in range(cfg.epochs):
        for indices in D.length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch):
            batch = D.batch_for(dataset.examples, indices, tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss = sft_loss(out.logits, batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += float(batch["attention_mask"].sum())
            history.append(float(loss.detach()))
    seconds = time.time() - started
    return {"tokens": tokens, "seconds": round(seconds, 2), "steps": len(history),
            "tokens_per_second": round(tokens / seconds, 2), "losses": history}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs for both (0: CPU)")
    parser.add_argument("--model", type=Path, help="model dir (default: the bundled SmolLM2)")
    args = parser.parse_args()
    model = args.model or prepare("smollm2-135m")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_dataset(work / "sft.jsonl", args.rows)
        cfg = TrainJobConfig(
            run="bench", iteration=0, dataset_path=str(work / "sft.jsonl"),
            init_model_path=str(model), output_dir=str(work / "out"), epochs=1,
            batch_size=args.batch, max_seq_len=128, learning_rate=2e-4,
            checkpoint_every_steps=10_000,
        )  # fmt: skip
        config_path = work / "config.json"
        config_path.write_text(cfg.model_dump_json(by_alias=True))
        plain = plain_run(cfg, args.gpus)
        ds = deepspeed_run(config_path, work, args.gpus)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name(0)}" if args.gpus else ""),
        "precision": ds.get("precision"),
        "rows": args.rows,
        "batch_size": args.batch,
        "steps": ds["steps"],
        "deepspeed_tokens_per_second": ds["tokens_per_second"],
        "deepspeed_train_seconds": ds["wall_seconds"]["train"],
        "deepspeed_process_seconds": ds["process_seconds"],
        "plain_tokens_per_second": plain["tokens_per_second"],
        "plain_train_seconds": plain["seconds"],
        "ratio_deepspeed_over_plain": round(
            ds["tokens_per_second"] / plain["tokens_per_second"], 3
        ),
        "deepspeed_final_loss": ds["history"][-1]["loss"],
        "plain_final_loss": round(plain["losses"][-1], 6),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

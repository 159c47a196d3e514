"""One iteration's training, offline: which training data and settings learn more?

A whole `rft run` mixes sampling luck with what a change does (two runs of one manifest
differed by 0.145 after three iterations). This holds the samples fixed: it trains a fresh
LoRA adapter on a given `sft.jsonl` (the scoring Job's output, or a re-filtered copy) from a
given init checkpoint with the training Job's own tokenization, batches and loss, merges it,
and evaluates greedily on the manifest's first evaluation set with the project's rewards.
Same inputs and seed, same result, so one change at a time can be compared.

    .venv/bin/python -m bench.bench_offline_sft examples/arith-smollm2.yaml \
        --init RUN/storage/arith-smollm2/it-0/checkpoint \
        --data RUN/storage/arith-smollm2/it-1/sft.jsonl [--dropout 0.05] [--lr 5e-4]

The optimizer is plain AdamW with the Job's settings (its learning-rate schedule, no weight
decay, gradients clipped at 1.0) instead of DeepSpeed's, so the seconds are indicative only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench.bench_reference_loop import Setup, evaluate, load_spec, resolver
from rft_runtime.config.jobs import PromptFormat, PromptSource
from rft_runtime.score.data import load_prompts
from rft_runtime.train import data as D
from rft_runtime.train.loading import load_tokenizer, lr_factor
from rft_runtime.train.losses import first_scored_column, sft_loss


def train(args: argparse.Namespace, spec: Any, tokenizer: Any, model: Any) -> dict[str, Any]:
    """Epochs of the Job's length-grouped batches over the dataset, completion-only loss."""
    from peft import LoraConfig, get_peft_model

    t, lora = spec.training, spec.training.lora
    targets = lora.target_modules
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout if args.dropout is None else args.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config, autocast_adapter_dtype=False)
    dataset = D.tokenize(D.read_rows(args.data), tokenizer, "sft", t.max_seq_len, str(args.data))
    params = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr or t.learning_rate
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    lengths = [e.length() for e in dataset.examples]
    bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    epochs = args.epochs or t.epochs
    total = epochs * len(D.length_grouped_batches(lengths, t.batch_size, args.seed, 0))
    schedule = args.schedule or t.lr_schedule or "linear"
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(schedule, total))
    model.train()
    started, steps, losses = time.monotonic(), 0, []
    for epoch in range(epochs):
        for indices in D.length_grouped_batches(lengths, t.batch_size, args.seed, epoch):
            batch = D.batch_for(dataset.examples, indices, tokenizer.pad_token_id)
            start = first_scored_column(batch["labels"])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    logits_to_keep=batch["input_ids"].size(1) - start,
                )
            loss = sft_loss(out.logits, batch["labels"][:, start:])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
            steps += 1
            losses.append(float(loss.detach()))
    return {
        "model": model.merge_and_unload(),
        "examples": len(dataset.examples),
        "steps": steps,
        "epochs": epochs,
        "learning_rate": lr,
        "schedule": schedule,
        "dropout": config.lora_dropout,
        "final_loss": round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4),
        "seconds": round(time.monotonic() - started, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(args.seed)
    spec = load_spec(args.manifest)
    resolve = resolver(spec, args.manifest)
    assert spec.evaluation is not None, "the manifest has no evaluation set"
    first = spec.evaluation.sets[0]
    data = spec.data
    rows = load_prompts(
        PromptSource(
            path=resolve(first.uri),
            prompt_field=first.prompt_field or data.prompt_field,
            answer_field=first.answer_field or data.answer_field,
            id_field=data.id_field,
        )
    )
    tokenizer = load_tokenizer(args.init)
    model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
    trained = train(args, spec, tokenizer, model)
    merged = trained.pop("model")
    tokenizer.padding_side = "left"  # generation pads on the left
    fmt = PromptFormat(
        system_prompt=data.system_prompt,
        prompt_template=data.prompt_template,
        use_chat_template=spec.model.use_chat_template,
    )
    setup = Setup(spec, fmt, tokenizer, 0, args.eval_batch, args.seed)
    scores = evaluate(setup, merged, {first.name: rows})
    return {"init": str(args.init), "data": str(args.data), "train": trained, "eval": scores}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", type=Path, help="rewards, LoRA and training settings, eval set")
    p.add_argument("--init", required=True, help="the checkpoint training starts from")
    p.add_argument("--data", type=Path, required=True, help="an sft.jsonl to train on")
    p.add_argument("--dropout", type=float, help="override training.lora.dropout")
    p.add_argument("--lr", type=float, help="override training.learningRate")
    p.add_argument("--epochs", type=int, help="override training.epochs")
    p.add_argument(
        "--schedule",
        choices=["constant", "linear"],
        help="override training.lrSchedule (unset: linear, as the sft Job)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-batch", type=int, default=50)
    p.add_argument("--out", type=Path, help="also write the JSON result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""One training run: data → DeepSpeed engine → steps with checkpoints → servable checkpoint.

A plain loop (nanochat/torchtune style) around `deepspeed.initialize`: every optimizer step is
`gradient_accumulation_steps` micro-batches, and the step counter alone decides what a
restarted process skips, so a resumed run ends with the same number of steps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from rft_runtime import live
from rft_runtime.config.jobs import TrainJobConfig, TrainSummary
from rft_runtime.config.keys import TOTAL_SECONDS, TRAINING_SECONDS
from rft_runtime.config.paths import IterationPaths
from rft_runtime.files import atomic_write_text

from . import data as D
from .export import save_servable
from .failure import TrainFailure
from .loading import (
    DTYPES,
    check_model_dir,
    cpu_autocast,
    deepspeed_config,
    load_model,
    load_tokenizer,
    lr_scheduler,
    policy_model,
    resolve_precision,
    saved_dtype,
)
from .losses import dpo_loss, first_scored_column, sequence_logps, sft_loss

log = logging.getLogger("rft.train")


def prepare_data(cfg: TrainJobConfig, tokenizer: Any) -> D.Dataset:
    """Read and tokenize; an empty or unusable dataset is an error that names the knob."""
    if cfg.dataset_path is None or cfg.method == "grpo":
        raise TrainFailure("InvalidConfig", f"method {cfg.method} has no dataset_path")
    rows = D.read_rows(cfg.dataset_path)
    if not rows:
        raise TrainFailure(
            "EmptyDataset",
            f"dataset {cfg.dataset_path} has no rows: the filter kept nothing; lower "
            "filter.minReward or raise sampler.samplesPerPrompt (the scoring Job's "
            "metrics.json counts what each filter dropped: many 'truncated' means "
            "sampler.maxTokens cuts the answers; raise it)",
        )
    dataset = D.tokenize(rows, tokenizer, cfg.method, cfg.max_seq_len, cfg.dataset_path)
    if not dataset.examples:
        raise TrainFailure(
            "SequencesTooLong",
            f"all {len(rows)} prompts fill training.maxSeqLen={cfg.max_seq_len} tokens, "
            "leaving no completion to train on; raise training.maxSeqLen",
        )
    return dataset


def _setup_threads(device_type: str) -> None:
    """On CPU, share the cores between the local ranks instead of oversubscribing them."""
    if device_type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


class Trainer:
    """Holds the engine and what a step needs; `run` is the whole job."""

    def __init__(self, cfg: TrainJobConfig) -> None:
        self.cfg = cfg
        self.paths = IterationPaths(cfg.output_dir)
        self.state_dir = Path(self.paths.train_state)
        self.bf16_autocast = False  # set in run(), once the device is known

    # -- one micro-batch -------------------------------------------------------------------
    def micro_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        tokens = float(batch["attention_mask"].sum())
        # only the columns a loss reads get logits (see first_scored_column)
        start = first_scored_column(batch["labels"])
        batch["labels"] = batch["labels"][:, start:]
        keep = batch["input_ids"].size(1) - start
        with self.autocast():
            out = self.engine(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                logits_to_keep=keep,
            )
        if self.cfg.method == "sft":
            loss = sft_loss(out.logits, batch["labels"])
            self.engine.backward(loss)
            self.engine.step()
            return {"loss": float(loss.detach()), "tokens": tokens}
        logps, _ = sequence_logps(out.logits, batch["labels"])
        with torch.no_grad():
            ref_logps, _ = sequence_logps(self.reference_logits(batch, keep), batch["labels"])
        half = logps.size(0) // 2
        loss, margin, accuracy = dpo_loss(
            logps[:half], logps[half:], ref_logps[:half], ref_logps[half:], self.cfg.beta
        )
        self.engine.backward(loss)
        self.engine.step()
        return {
            "loss": float(loss.detach()),
            "tokens": tokens,
            "margin": float(margin),
            "accuracy": float(accuracy),
        }

    def reference_logits(self, batch: dict[str, torch.Tensor], keep: int) -> torch.Tensor:
        """LoRA: the same weights with the adapter off. Full: a frozen copy of the init model."""
        args = {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "logits_to_keep": keep,
        }
        logits: torch.Tensor
        if self.reference is None:
            with self.engine.module.disable_adapter(), self.autocast():
                logits = self.engine.module(**args).logits
        else:
            with self.autocast():
                logits = self.reference(**args).logits
        return logits

    def autocast(self) -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16_autocast)

    # -- setup ---------------------------------------------------------------------------
    def start_world(self) -> None:
        """The DeepSpeed process group, this rank's device, and the precision to train in."""
        import deepspeed
        from deepspeed.accelerator import get_accelerator

        from . import ops_cache

        ops_cache.restore()
        deepspeed.init_distributed()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        accelerator = get_accelerator()
        device_type = "cuda" if accelerator.device_name() == "cuda" else "cpu"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(accelerator.device_name(local_rank))
        _setup_threads(device_type)
        self.bf16_autocast = cpu_autocast(self.cfg.precision, device_type)
        self.precision = resolve_precision(self.cfg.precision, device_type)

    def needs_reference(self) -> bool:
        """DPO always compares with a reference; GRPO only with a KL penalty."""
        if self.cfg.method == "dpo":
            return True
        return bool(self.cfg.grpo and self.cfg.grpo.params.kl_coef > 0)

    def start_engine(self, accumulation: int, total_steps: int) -> None:
        """The policy (and, in full mode, a frozen reference when the loss needs one) as a
        DeepSpeed engine taking `accumulation` micro-batches per optimizer step, its learning
        rate following `training.lrSchedule` over `total_steps`."""
        import deepspeed

        from . import ops_cache

        cfg = self.cfg
        dtype = DTYPES[self.precision]
        torch.manual_seed(cfg.seed)
        model = policy_model(cfg, dtype)
        self.reference = None
        if cfg.mode == "full" and self.needs_reference():
            ref_path = cfg.reference_model_path or cfg.init_model_path
            self.reference = load_model(ref_path, dtype).to(self.device).eval()
            self.reference.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        ds_cfg = cfg.model_copy(update={"gradient_accumulation_steps": accumulation})
        self.engine, *_ = deepspeed.initialize(
            model=model,
            model_parameters=params,
            config=deepspeed_config(ds_cfg, self.precision),
            lr_scheduler=lr_scheduler(cfg.lr_schedule, total_steps),
        )
        ops_cache.save()

    def precision_label(self) -> str:
        return self.precision + ("+bf16-autocast" if self.bf16_autocast else "")

    # -- checkpoints -----------------------------------------------------------------------
    def save_state(self, step: int, history: list[dict[str, float]]) -> None:
        """All ranks write their shard; rank 0 then drops older tags (only the last is kept)."""
        tag = f"step-{step}"
        self.engine.save_checkpoint(
            str(self.state_dir),
            tag=tag,
            client_state={"step": step, "total_steps": self.total_steps, "history": history},
            exclude_frozen_parameters=self.cfg.mode == "lora",
        )
        dist.barrier()
        if self.rank == 0:
            for old in self.state_dir.glob("step-*"):
                if old.name != tag:
                    shutil.rmtree(old, ignore_errors=True)

    def restore(self) -> tuple[int, list[dict[str, float]]]:
        """Continue from train-state/ when a previous attempt left one (pod restarted)."""
        lora = self.cfg.mode == "lora"
        if (self.state_dir / "latest").is_file():
            path, client = self.engine.load_checkpoint(
                str(self.state_dir), load_module_strict=not lora
            )
            if path is None:
                raise TrainFailure("TrainStateUnreadable", f"cannot load {self.state_dir}")
            if client.get("total_steps") != self.total_steps:
                raise TrainFailure(
                    "TrainStateMismatch",
                    f"{self.state_dir} is from a run with {client.get('total_steps')} steps, "
                    f"this one has {self.total_steps}; delete it to start over",
                )
            log.info("resumed from %s at step %s", path, client["step"])
            return int(client["step"]), list(client["history"])
        if self.cfg.resume_optimizer_from:
            self.restore_optimizer(self.cfg.resume_optimizer_from)
        return 0, []

    def restore_optimizer(self, path: str) -> None:
        """The previous iteration's Adam moments. Only with full weights: a LoRA adapter is
        merged into the next init model and starts fresh, so its old moments do not apply."""
        if self.cfg.mode == "lora":
            log.warning("resume_optimizer_from ignored in lora mode (new adapter each iteration)")
            return
        if not (Path(path) / "latest").is_file():
            raise TrainFailure(
                "OptimizerStateMissing",
                f"no DeepSpeed train state at {path}; unset resume_optimizer_from",
            )
        self.engine.load_checkpoint(path, load_lr_scheduler_states=False)

    # -- the job ---------------------------------------------------------------------------
    def run(self) -> TrainSummary:
        cfg = self.cfg
        started = time.time()
        check_model_dir(cfg.init_model_path, "training.initFrom (init_model_path)")
        if self.needs_reference() and cfg.mode == "full" and cfg.reference_model_path:
            check_model_dir(cfg.reference_model_path, "reference_model_path")
        tokenizer = load_tokenizer(cfg.init_model_path)
        dataset = prepare_data(cfg, tokenizer)

        self.start_world()
        accumulation = cfg.gradient_accumulation_steps
        per_epoch = D.steps_per_epoch(
            len(dataset.examples), cfg.batch_size, self.world, accumulation
        )
        self.total_steps = per_epoch * cfg.epochs
        self.start_engine(accumulation, self.total_steps)
        start_step, history = self.restore()
        lengths = [e.length() for e in dataset.examples]
        pad_id = tokenizer.pad_token_id

        self.engine.train()
        step, tokens, train_started = 0, 0.0, time.time()
        live.current().start("train", "steps", self.total_steps, start_step)
        for epoch in range(cfg.epochs):
            batches = D.length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
            mine = D.rank_batches(batches, self.world, self.rank, accumulation)
            for index in range(per_epoch):
                step += 1
                if step <= start_step:
                    continue
                lr = float(self.engine.get_lr()[0])  # this step's (training.lrSchedule)
                stats = [
                    self.micro_step(D.batch_for(dataset.examples, indices, pad_id))
                    for indices in mine[index * accumulation : (index + 1) * accumulation]
                ]
                record = self.reduce(stats, step, epoch)
                record["lr"] = lr
                step_tokens = record.pop("tokens_all")
                tokens += step_tokens
                history.append(record)
                live.current().advance(step, step_tokens, record.get("loss"))
                if self.rank == 0:
                    log.info("step %d/%d %s", step, self.total_steps, record)
                if step % cfg.checkpoint_every_steps == 0 or index == per_epoch - 1:
                    self.save_state(step, history)
        train_seconds = time.time() - train_started
        live.current().finish()

        checkpoint = Path(self.paths.checkpoint)
        save_servable(self.engine, cfg, tokenizer, saved_dtype(cfg.init_model_path), checkpoint)
        seconds = {
            TRAINING_SECONDS: round(train_seconds, 3),
            TOTAL_SECONDS: round(time.time() - started, 3),
        }
        metrics = {
            "method": cfg.method,
            "mode": cfg.mode,
            "precision": self.precision_label(),
            "world_size": self.world,
            "steps": self.total_steps,
            "steps_this_run": self.total_steps - start_step,
            "resumed_from_step": start_step,
            "examples": len(dataset.examples),
            "rows": dataset.rows,
            "truncated": dataset.truncated,
            "dropped": dataset.dropped,
            "tokens_this_run": tokens,
            "tokens_per_second": round(tokens / max(train_seconds, 1e-9), 2),
            "wall_seconds": seconds,
            "history": history,
        }
        if self.rank == 0:
            atomic_write_text(self.paths.train_metrics, json.dumps(metrics, indent=1))
        dist.barrier()
        return TrainSummary(
            iteration=cfg.iteration,
            checkpoint=str(checkpoint),
            steps=self.total_steps,
            final_loss=history[-1]["loss"] if history else None,
            seconds=seconds,
        )

    def reduce(self, stats: list[dict[str, float]], step: int, epoch: int) -> dict[str, Any]:
        """Average the step's micro-batch figures over all ranks (every rank logs the same)."""
        keys = [k for k in stats[0] if k != "tokens"]
        local = [sum(s[k] for s in stats) / len(stats) for k in keys]
        local.append(sum(s["tokens"] for s in stats))
        # on the training device: NCCL (GPU ranks) reduces no CPU tensors
        values = torch.tensor(local, dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        record: dict[str, Any] = {"step": step, "epoch": epoch}
        for i, key in enumerate(keys):
            record[key] = round(float(values[i]) / self.world, 6)
        record["tokens_all"] = float(values[-1])
        return record

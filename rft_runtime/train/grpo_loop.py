"""The GRPO training Job: sample groups through the sampler, score, step, publish, repeat.

One step t (1-based) of an iteration:
1. take this step's prompts (from seed and global step: a resumed run takes the same ones);
   each rank its own share;
2. ask the sampler for `group_size` completions of each (it serves policy t-1), score them
   with the run's rewards (`grpo_sampling`);
3. group-normalised advantages, the clipped policy-gradient loss (`grpo`), one optimizer
   step over the batch (micro-batches of training.batchSize, accumulated);
4. publish policy t: rank 0 writes it to policy-steps/step-t and waits until the sampler
   serves it (`policy_sync`).

With `async`, the batch of step t+1 is sampled (from policy t-1) while step t trains; it is
collected before policy t is published, so no batch mixes two policies. The policy lag is
then 1; the sampler reports the tokens it sampled and their log-probabilities, and the
clipped ratio exp(log pi_trainee - log pi_sampler) corrects for the lag (PPO's importance
weight). Synchronous steps train on the completions re-tokenised like SFT data, with the
trainee as its own old policy (ratio 1).

The last policy is written to checkpoint/ exactly as SFT writes it and handed to the
sampler, so evaluation, best checkpoint and status work unchanged. The training state is
saved every `checkpoint_every_steps` and at the end; a restarted pod resumes there and first
publishes the restored policy again, so the sampler serves the trainee's weights.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from rft_runtime import live
from rft_runtime.config.jobs import GrpoJob, TrainSummary
from rft_runtime.config.keys import (
    GENERATION_SECONDS,
    POLICY_SYNC_SECONDS,
    SCORING_SECONDS,
    TOTAL_SECONDS,
    TRAINING_SECONDS,
)
from rft_runtime.files import atomic_write_text
from rft_runtime.policy_sync import PolicyNotLoaded, wait_until_served
from rft_runtime.score.data import PromptRow, PromptsUnreadable, load_prompts
from rft_runtime.score.formatting import chat_messages, raw_text

from . import data as D
from .export import save_policy_copy, save_servable
from .failure import TrainFailure
from .grpo import (
    group_advantages,
    grpo_loss,
    micro_batches,
    rank_share,
    step_prompts,
    token_logps,
    zero_signal_fraction,
)
from .grpo_sampling import Batch, GroupSampler
from .loading import check_model_dir, load_tokenizer, saved_dtype
from .loop import Trainer
from .losses import first_scored_column

log = logging.getLogger("rft.train.grpo")
KEEP_POLICIES = 2  # published step folders kept (the sampler may still be loading the older)
MIN_LOGPROB = -100.0  # below: vLLM's floor for a log-probability it did not have


class GrpoTrainer(Trainer):
    """`Trainer`'s engine, checkpoints and reference, driven by GRPO steps."""

    @property
    def job(self) -> GrpoJob:
        assert self.cfg.grpo is not None
        return self.cfg.grpo

    # -- data ------------------------------------------------------------------------------
    def load_rows(self) -> list[PromptRow]:
        try:
            rows = load_prompts(self.job.prompts)
        except PromptsUnreadable as exc:
            raise TrainFailure("InvalidData", f"data.train: {exc}") from exc
        if not rows:
            raise TrainFailure("EmptyDataset", f"{self.job.prompts.path} has no prompts")
        return rows

    def rows_for(self, step: int) -> list[PromptRow]:
        """This rank's prompts of step `step` (1-based) of this iteration."""
        count = self.per_rank * self.world  # promptsPerStep rounded up to the ranks
        picked = step_prompts(len(self.rows), count, self.cfg.seed, self.job.step_offset + step - 1)
        return [self.rows[i] for i in rank_share(picked, self.world, self.rank)]

    def prompt_ids(self, prompt: str) -> list[int]:
        """Exactly what the sampler was sent (as `train.data` tokenizes SFT rows)."""
        fmt = self.job.prompt_format
        if fmt.use_chat_template:
            return D.prompt_ids(self.tokenizer, chat_messages(fmt, prompt))
        return D.raw_prompt_ids(self.tokenizer, raw_text(fmt, prompt))

    def completion_ids(self, text: str, finish_reason: str | None) -> list[int]:
        """The completion's tokens; EOS only when the model stopped (a cut answer did not)."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return [*ids, self.tokenizer.eos_token_id] if finish_reason == "stop" else ids

    def sequences(
        self, batch: Batch
    ) -> tuple[list[D.Sequence], list[float], int, list[list[float] | None]]:
        """Token sequences, their advantages, the batch's completion-token count, and per
        sequence the sampling policy's log-probability of each token (NaN where unknown),
        when the sampler reported the tokens it sampled (async)."""
        params = self.job.params
        seqs: list[D.Sequence] = []
        advantages: list[float] = []
        olds: list[list[float] | None] = []
        eos = self.tokenizer.eos_token_id
        for group in batch.groups:
            prompt = self.prompt_ids(group.row.prompt)
            adv = group_advantages(group.rewards, params.group_size, params.scale_by_std)
            for index, (text, finish, a) in enumerate(
                zip(group.texts, group.finish_reasons, adv, strict=True)
            ):
                old: list[float] | None = None
                if group.tokens is not None:  # exactly what was sampled
                    ids, logps = list(group.tokens[index][0]), list(group.tokens[index][1])
                    if finish == "stop" and (not ids or ids[-1] != eos):
                        ids, logps = [*ids, eos], [*logps, math.nan]
                    old = [math.nan] * len(prompt) + [
                        lp if lp > MIN_LOGPROB else math.nan for lp in logps
                    ]
                    old = old[: self.cfg.max_seq_len]
                else:
                    ids = self.completion_ids(text, finish)
                seq, _ = D.encode(prompt, ids, self.cfg.max_seq_len)
                if seq is None:  # no completion token fits: it still counts, with no loss
                    cut = prompt[: self.cfg.max_seq_len]
                    seq, old = D.Sequence(cut, [D.IGNORE] * len(cut)), None
                seqs.append(seq)
                advantages.append(a)
                olds.append(old)
        tokens = sum(_scored(s) for s in seqs)
        return seqs, advantages, tokens, olds

    def old_logps(
        self, olds: list[list[float] | None], logps: torch.Tensor, start: int = 0
    ) -> torch.Tensor:
        """The sampling policy's log-probabilities aligned with `logps` ([rows, columns]:
        column j predicts token start + j + 1); the trainee's own (detached) where unknown."""
        current = logps.detach()
        if all(old is None for old in olds):
            return current
        table = torch.full(current.shape, math.nan, dtype=current.dtype)
        for row, old in enumerate(olds):
            if old is not None and len(old) > 1 + start:
                values = torch.tensor(old[1 + start :], dtype=current.dtype)[: table.size(1)]
                table[row, : values.numel()] = values
        table = table.to(current.device)
        return torch.where(torch.isnan(table), current, table)

    # -- one step --------------------------------------------------------------------------
    def train_on(self, batch: Batch) -> dict[str, float]:
        """One optimizer step over the batch: micro-batches add up to the whole batch's loss
        (each divided by the batch's token or sequence count, DeepSpeed averages over ranks)."""
        params = self.job.params
        seqs, advantages, tokens, olds = self.sequences(batch)
        # the loss is divided by every completion token (or sequence) of the batch, those
        # skipped for having no signal included: skipping them changes nothing
        total = float(tokens) if params.loss_aggregation == "token" else float(len(seqs))
        use_kl = params.kl_coef > 0
        lengths = [len(s.input_ids) for s in seqs]
        chunks = micro_batches(lengths, advantages, self.accumulation, keep_all=use_kl)
        run = {i for chunk in chunks for i in chunk if use_kl or advantages[i] != 0.0}
        ran_tokens = sum(_scored(seqs[i]) for i in run)
        pad_id = self.tokenizer.pad_token_id
        loss = kl = clipped = 0.0
        for chunk in chunks:
            micro = D.collate([seqs[i] for i in chunk], pad_id)
            micro = {k: v.to(self.device) for k, v in micro.items()}
            adv = torch.tensor([advantages[i] for i in chunk], device=self.device)
            # only the columns a loss reads get logits (prompts carry none)
            start = first_scored_column(micro["labels"])
            labels = micro["labels"][:, start:]
            keep = micro["input_ids"].size(1) - start
            with self.autocast():
                out = self.engine(
                    input_ids=micro["input_ids"],
                    attention_mask=micro["attention_mask"],
                    logits_to_keep=keep,
                )
            logps, mask = token_logps(out.logits, labels)
            ref = None
            if use_kl:
                with torch.no_grad():
                    ref, _ = token_logps(self.reference_logits(micro, keep), labels)
            # sync: the sampling policy is the trainee (ratio 1); async: the sampler's
            old = self.old_logps([olds[i] for i in chunk], logps, start)
            result = grpo_loss(
                logps,
                old,
                adv,
                mask,
                params.clip_range,
                params.loss_aggregation,
                ref,
                params.kl_coef,
                total=max(total, 1.0),
            )
            # DeepSpeed divides by the accumulation steps; the parts already sum to the mean
            self.engine.backward(result.loss * self.accumulation)
            self.engine.step()
            loss += float(result.loss.detach())
            share = float(mask.sum()) / max(ran_tokens, 1)
            kl += float(result.kl) * share if result.kl is not None else 0.0
            clipped += float(result.clipped) * share
        rewards = [r for g in batch.groups for r in g.rewards]
        flat = torch.tensor(rewards, dtype=torch.float64)
        groups = batch.groups
        stats = {
            "loss": loss,
            "reward_sum": float(flat.sum()),
            "reward_sq_sum": float((flat**2).sum()),
            "completions": float(len(rewards)),
            "correct": float(sum(sum(g.correct) for g in groups)),
            "zero_signal_groups": zero_signal_fraction(rewards, params.group_size) * len(groups),
            "groups": float(len(groups)),
            "rejected_groups": float(sum(g.error is not None for g in groups)),
            "completion_tokens": float(batch.tokens),
            "trained_tokens": float(ran_tokens),
            "skipped_sequences": float(len(seqs) - len(run)),
            "clipped": clipped,
        }
        if use_kl:
            stats["kl"] = kl
        return stats

    def step_record(self, step: int, stats: dict[str, float], lag: int) -> dict[str, float]:
        """The step's figures over all ranks (sums of counts, means of the rest)."""
        summed = (
            "reward_sum", "reward_sq_sum", "completions", "correct", "zero_signal_groups",
            "groups", "rejected_groups", "completion_tokens", "trained_tokens",
            "skipped_sequences",
        )  # fmt: skip
        keys = sorted(stats)
        values = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        got = {k: float(values[i]) for i, k in enumerate(keys)}
        for k in keys:
            if k not in summed:
                got[k] /= self.world
        n = max(got["completions"], 1.0)
        mean = got["reward_sum"] / n
        record = {
            "step": step,
            "reward_mean": round(mean, 6),
            "reward_std": round(math.sqrt(max(got["reward_sq_sum"] / n - mean**2, 0.0)), 6),
            "pass_rate": round(got["correct"] / n, 6),
            "zero_signal_fraction": round(got["zero_signal_groups"] / max(got["groups"], 1), 6),
            "loss": round(got["loss"], 6),
            "clip_fraction": round(got["clipped"], 6),
            "policy_lag": lag,
            "completions": int(got["completions"]),
            "rejected_groups": int(got["rejected_groups"]),
            "completion_tokens": int(got["completion_tokens"]),
            "trained_tokens": int(got["trained_tokens"]),
            "skipped_sequences": int(got["skipped_sequences"]),
        }
        if "kl" in got:
            record["kl"] = round(got["kl"], 6)
        return record

    # -- the policy hand-over ----------------------------------------------------------------
    def serve(self, policy_path: str) -> float:
        """Rank 0 asks the sampler for `policy_path` and waits for it; every rank goes on
        together afterwards. Seconds waited."""
        sync = self.job.policy_sync
        waited = 0.0
        if self.rank == 0:
            try:
                waited = wait_until_served(
                    sync.policy_file,
                    sync.loaded_dir,
                    policy_path,
                    sync.replicas,
                    sync.timeout_seconds,
                    say=log.info,
                )
            except PolicyNotLoaded as exc:
                raise TrainFailure("PolicyNotLoaded", str(exc)) from exc
        dist.barrier()
        return waited

    def publish(self, step: int) -> float:
        """Write policy `step` (every rank takes part: ZeRO-3 gathers) and have it served."""
        start = time.monotonic()
        folder = self.policy_root / f"step-{step}"
        save_policy_copy(self.engine, self.cfg, self.tokenizer, self.dtype, folder)
        dist.barrier()
        self.serve(str(folder))
        seconds = time.monotonic() - start
        if self.rank == 0:
            log.info("published %s (served after %.1f s)", folder, seconds)
            for old in sorted(self.policy_root.glob("step-*"), key=_step_of)[:-KEEP_POLICIES]:
                shutil.rmtree(old, ignore_errors=True)
        return seconds

    # -- the job ---------------------------------------------------------------------------
    def run(self) -> TrainSummary:
        cfg, job = self.cfg, self.job
        params = job.params
        started = time.time()
        check_model_dir(cfg.init_model_path, "training.initFrom (init_model_path)")
        self.tokenizer = load_tokenizer(cfg.init_model_path)
        self.dtype = saved_dtype(cfg.init_model_path)
        self.rows = self.load_rows()
        self.policy_root = Path(self.paths.policy_steps)

        self.start_world()
        self.per_rank = math.ceil(params.prompts_per_step / self.world)
        self.accumulation = math.ceil(self.per_rank * params.group_size / cfg.batch_size)
        self.total_steps = params.steps_per_iteration
        self.start_engine(self.accumulation, self.total_steps)
        start_step, history = self.restore()

        # the sampler must serve the trainee's weights before the first sample
        if start_step == 0:
            first_sync = self.serve(cfg.init_model_path)
        elif start_step < self.total_steps:  # resumed: the restored policy, served again
            first_sync = self.publish(start_step)
        else:  # resumed after the last step: only the hand-over below is left
            first_sync = 0.0
        sampler = GroupSampler(job, logprobs=params.async_)
        seconds = {GENERATION_SECONDS: 0.0, SCORING_SECONDS: 0.0, TRAINING_SECONDS: 0.0}
        seconds[POLICY_SYNC_SECONDS] = first_sync
        self.engine.train()
        live.current().start("grpo", "steps", self.total_steps, start_step)
        pending: Future[Batch] | None = None
        try:
            for step in range(start_step + 1, self.total_steps + 1):
                step_started = time.monotonic()
                if pending is None:
                    pending = sampler.submit(self.rows_for(step), step, policy_step=step - 1)
                waited = time.monotonic()
                batch = pending.result()
                wait = time.monotonic() - waited
                pending = None
                if params.async_ and step < self.total_steps:  # sampled by policy step - 1
                    pending = sampler.submit(self.rows_for(step + 1), step + 1, step - 1)
                trained = time.monotonic()
                stats = self.train_on(batch)
                train_seconds = time.monotonic() - trained
                if pending is not None:  # never publish while a batch is being sampled
                    waited = time.monotonic()
                    pending.result()
                    wait += time.monotonic() - waited
                sync = self.publish(step) if step < self.total_steps else 0.0
                record = self.step_record(step, stats, lag=(step - 1) - batch.policy_step)
                record.update(
                    generation_seconds=round(batch.generation_seconds, 3),
                    scoring_seconds=round(batch.scoring_seconds, 3),
                    wait_seconds=round(wait, 3),
                    training_seconds=round(train_seconds, 3),
                    policy_sync_seconds=round(sync, 3),
                    step_seconds=round(time.monotonic() - step_started, 3),
                )
                history.append(record)
                if step % cfg.checkpoint_every_steps == 0 or step == self.total_steps:
                    self.save_state(step, history)
                seconds[GENERATION_SECONDS] += wait
                seconds[SCORING_SECONDS] += batch.scoring_seconds
                seconds[TRAINING_SECONDS] += train_seconds
                seconds[POLICY_SYNC_SECONDS] += sync
                live.current().advance(
                    step, record["trained_tokens"], record["loss"], record["reward_mean"]
                )
                if self.rank == 0:
                    log.info("step %d/%d %s", step, self.total_steps, record)
                    self.write_metrics(history, seconds, start_step, started, done=False)
        finally:
            if pending is not None:
                pending.cancel()
            sampler.close()
        live.current().finish()

        # the last policy: checkpoint/ exactly as SFT writes it, then served from there
        checkpoint = Path(self.paths.checkpoint)
        handed = time.monotonic()
        save_servable(self.engine, cfg, self.tokenizer, self.dtype, checkpoint)
        dist.barrier()
        self.serve(str(checkpoint))
        seconds[POLICY_SYNC_SECONDS] += time.monotonic() - handed
        if self.rank == 0:
            shutil.rmtree(self.policy_root, ignore_errors=True)
            self.write_metrics(history, seconds, start_step, started, done=True)
        dist.barrier()
        return TrainSummary(
            iteration=cfg.iteration,
            checkpoint=str(checkpoint),
            steps=self.total_steps,
            final_loss=history[-1]["loss"] if history else None,
            seconds={
                **{k: round(v, 3) for k, v in seconds.items()},
                TOTAL_SECONDS: round(time.time() - started, 3),
            },
            samples=sum(int(r["completions"]) for r in history),
            mean_reward=(
                round(sum(r["reward_mean"] for r in history) / len(history), 6) if history else None
            ),
            policy_lag=max((int(r["policy_lag"]) for r in history), default=0),
        )

    def write_metrics(
        self,
        history: list[dict[str, float]],
        seconds: dict[str, float],
        start_step: int,
        started: float,
        done: bool,
    ) -> None:
        """train-metrics.json: rewritten after every step, so a curve is there mid-run."""
        params = self.job.params
        metrics: dict[str, Any] = {
            "method": "grpo",
            "mode": self.cfg.mode,
            "precision": self.precision_label(),
            "world_size": self.world,
            "async": params.async_,
            "group_size": params.group_size,
            "prompts_per_step": self.per_rank * self.world,
            "steps": self.total_steps,
            "steps_done": int(history[-1]["step"]) if history else start_step,
            "resumed_from_step": start_step,
            "finished": done,
            "wall_seconds": {
                **{k: round(v, 3) for k, v in seconds.items()},
                TOTAL_SECONDS: round(time.time() - started, 3),
            },
            "history": history,
        }
        atomic_write_text(self.paths.train_metrics, json.dumps(metrics, indent=1))


def _scored(seq: D.Sequence) -> int:
    """Completion tokens of a sequence that a loss reads."""
    return sum(1 for label in seq.labels[1:] if label != D.IGNORE)


def _step_of(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1

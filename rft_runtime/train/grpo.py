"""GRPO's arithmetic (Shao et al. 2024, DeepSeekMath): pure functions, no I/O.

- `group_advantages`: each completion's reward against the others of its prompt,
  (r - mean) / (std + eps); a group whose rewards are all equal carries no signal (zeros).
- `token_logps`: log p of every completion token under a model's logits.
- `grpo_loss`: the clipped policy-gradient loss (PPO-clip on the per-token ratio
  exp(logp - old_logp)), an optional k3 KL penalty against a reference policy, aggregated
  per token or per sequence.
- `micro_batches`: which sequences a step's forward passes take (those with signal only,
  when nothing else is in the loss).
- `step_prompts`: which prompts a step takes (deterministic from seed and step, so a resumed
  run takes the same ones; distinct within a step).

The std is the population std of the group (ddof 0): rewards [1, 0] give advantages
[+1, -1] up to eps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .data import IGNORE

Aggregation = Literal["token", "sequence"]
EPS = 1e-6


def group_advantages(
    rewards: Sequence[float], group_size: int, scale: bool = True, eps: float = EPS
) -> list[float]:
    """Advantages of consecutive groups of `group_size` rewards (one group per prompt)."""
    if group_size < 1 or len(rewards) % group_size:
        raise ValueError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = [float(r) for r in rewards[start : start + group_size]]
        mean = sum(group) / len(group)
        if all(r == group[0] for r in group):  # no signal: exactly zero, not 0 / eps
            out += [0.0] * len(group)
            continue
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / len(group))
        out += [(r - mean) / (std + eps) if scale else r - mean for r in group]
    return out


def zero_signal_fraction(rewards: Sequence[float], group_size: int) -> float:
    """Share of groups whose rewards are all equal (they teach nothing this step)."""
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    if not groups:
        return 0.0
    return sum(all(r == g[0] for r in g) for g in groups) / len(groups)


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each next token, mask of completion tokens), both [batch, length - 1].

    Labels are HF-style (aligned with the inputs, IGNORE on prompt and padding)."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.clamp(min=0).reshape(-1),
        reduction="none",
    ).view(targets.shape)
    return -nll * mask, mask


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per token: exp(ref - logp) - (ref - logp) - 1 (Schulman's k3: unbiased, >= 0)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    how: Aggregation,
    total: float | None = None,
) -> torch.Tensor:
    """token: sum over completion tokens / their number. sequence: each row's token mean,
    summed / the number of rows. `total` replaces the denominator (token count or row count
    of the whole batch) when this is one micro-batch of a larger one."""
    weights = mask.to(per_token.dtype)
    if how == "token":
        denominator = float(total) if total is not None else weights.sum().clamp(min=1)
        return (per_token * weights).sum() / denominator
    rows = (per_token * weights).sum(-1) / weights.sum(-1).clamp(min=1)
    return rows.sum() / (float(total) if total is not None else max(rows.size(0), 1))


@dataclass
class GrpoLoss:
    loss: torch.Tensor  # the scalar to back-propagate
    policy: torch.Tensor  # the policy-gradient part (detached)
    kl: torch.Tensor | None  # mean k3 KL per completion token (detached), None without one
    clipped: torch.Tensor  # share of completion tokens whose ratio was clipped (detached)


def grpo_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    aggregation: Aggregation = "token",
    ref_logps: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    total: float | None = None,
) -> GrpoLoss:
    """Per token: -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + beta * k3 KL.

    `logps`, `old_logps`, `ref_logps` and `mask` are [batch, tokens]; `advantages` [batch]
    (one per completion, the same for all its tokens)."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages.to(logps.dtype).unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * adv
    policy_term = -torch.minimum(unclipped, clipped)
    per_token = policy_term
    kl = None
    if ref_logps is not None and kl_coef > 0:
        kl_tokens = kl_k3(logps, ref_logps)
        per_token = per_token + kl_coef * kl_tokens
        kl = aggregate(kl_tokens.detach(), mask, "token")
    weights = mask.to(logps.dtype)
    was_clipped = ((clipped < unclipped) & mask).to(logps.dtype)  # min chose the clipped term
    return GrpoLoss(
        loss=aggregate(per_token, mask, aggregation, total),
        policy=aggregate(policy_term.detach(), mask, aggregation, total),
        kl=kl,
        clipped=was_clipped.sum() / weights.sum().clamp(min=1),
    )


def micro_batches(
    lengths: Sequence[int], advantages: Sequence[float], count: int, keep_all: bool
) -> list[list[int]]:
    """Exactly `count` micro-batches (the accumulation count DeepSpeed was built with, the
    same on every rank) of sequence indices, longest first so each pads little.

    A sequence whose advantage is 0 adds exactly 0 to the policy loss and to its gradient
    (the token or sequence count it adds to the loss's denominator is passed separately),
    so unless `keep_all` (a KL term, which every sequence feeds) only sequences with signal
    are run; early in training most groups have none. The kept ones are spread evenly over
    the micro-batches; a micro-batch left empty runs the shortest sequence without signal
    alone (a pass that adds nothing, so every rank makes the same passes)."""
    if count < 1:
        raise ValueError("count must be >= 1")
    everything = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    kept = everything if keep_all else [i for i in everything if advantages[i] != 0.0]
    idle = [i for i in everything if advantages[i] == 0.0][-1:] or everything[-1:]
    per, extra = divmod(len(kept), count)
    batches: list[list[int]] = []
    start = 0
    for n in range(count):
        size = per + (1 if n < extra else 0)
        batches.append(kept[start : start + size] or idle)
        start += size
    return batches


def step_prompts(n_prompts: int, per_step: int, seed: int, step: int) -> list[int]:
    """The prompt indices of global step `step`: passes over a seeded shuffle of all prompts,
    reshuffled each pass, whole steps only (the remainder of a pass waits for another pass),
    so a step never repeats a prompt unless it asks for more than there are. The same
    (seed, step) always gives the same prompts."""
    if n_prompts < 1:
        raise ValueError("no prompts")
    steps_per_pass = max(n_prompts // per_step, 1)
    epoch, index = divmod(step, steps_per_pass)
    order = list(range(n_prompts))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    start = index * per_step
    return [order[(start + i) % n_prompts] for i in range(per_step)]


def rank_share(items: Sequence[int], world: int, rank: int) -> list[int]:
    """This rank's part of a step's prompts: ceil(n / world) each, wrapping around so every
    rank has the same count (their collectives stay in step)."""
    per_rank = math.ceil(len(items) / world)
    return [items[(rank * per_rank + i) % len(items)] for i in range(per_rank)]

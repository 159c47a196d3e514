"""SFT and DPO losses from logits; labels are HF-style (aligned with inputs, IGNORE = no loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import IGNORE


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: sum of log p(completion token) and the number of such tokens.

    cross_entropy(reduction="none") avoids materialising a full log-softmax copy.
    """
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    nll = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="none",
    ).view(targets.shape)
    mask = targets != IGNORE
    return -(nll * mask).sum(-1), mask.sum(-1)


def first_scored_column(labels: torch.Tensor) -> int:
    """The first position whose logits any row's loss reads (logits at t predict token t+1).

    Prompts carry no loss, so the logits of the columns before this one need not be
    computed: on short completions after a chat template that skips most of the vocabulary
    projection (49k x 576 per token for SmolLM2).
    """
    scored = (labels != IGNORE).any(dim=0).nonzero()
    return max(int(scored[0]) - 1, 0) if scored.numel() else 0


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all completion tokens of the micro-batch."""
    logps, counts = sequence_logps(logits, labels)
    return -logps.sum() / counts.sum().clamp(min=1)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO (Rafailov et al. 2023); also the implicit reward margin and accuracy.

    Implicit reward r = beta * (log pi - log pi_ref); margin = r(chosen) - r(rejected).
    """
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    margin = chosen_reward - rejected_reward
    loss = -F.logsigmoid(margin).mean()
    return loss, margin.detach().mean(), (margin > 0).float().mean()

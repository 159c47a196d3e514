"""Reward functions: one file per type, one registry, one way to combine them.

Each reward is a small pure function `(spec, prompt, completion, answer) -> RewardResult`
(per item). `score_batch` gives the TRL-style batch view. A new reward type is a new file
plus one entry in `REGISTRY` (and in `spec.RewardType`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config.spec import RewardSpec
from .base import RewardResult, SafeRewardFn, guarded
from .exact import exact_reward
from .math_equiv import math_reward
from .normalized import normalized_reward
from .numeric import numeric_reward
from .python import python_reward
from .regex import regex_reward

REGISTRY: dict[str, SafeRewardFn] = {
    "math": guarded(math_reward),
    "exact": guarded(exact_reward),
    "normalized": guarded(normalized_reward),
    "numeric": guarded(numeric_reward),
    "regex": guarded(regex_reward),
    "python": guarded(python_reward),
}


@dataclass(frozen=True)
class Scored:
    """The total reward of one completion, with each reward's value and reason."""

    total: float
    rewards: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    gated: bool = False


def score_one(
    specs: Sequence[RewardSpec], prompt: str, completion: object, answer: object
) -> Scored:
    """Weighted sum of all rewards; a `gate` reward at 0 zeroes the total."""
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    total, gated = 0.0, False
    for spec in specs:
        result = REGISTRY[spec.type](spec, prompt, completion, answer)
        values[spec.name] = result.value
        if result.reason:
            reasons[spec.name] = result.reason
        total += spec.weight * result.value
        gated = gated or (spec.gate and result.value == 0.0)
    return Scored(0.0 if gated else total, values, reasons, gated)


def score_batch(
    specs: Sequence[RewardSpec],
    prompts: Sequence[str],
    completions: Sequence[object],
    answers: Sequence[object],
) -> list[Scored]:
    """TRL-style batch scoring: one `Scored` per (prompt, completion, answer)."""
    return [
        score_one(specs, p, c, a) for p, c, a in zip(prompts, completions, answers, strict=True)
    ]


def is_correct(specs: Sequence[RewardSpec], scored: Scored) -> bool:
    """Evaluation correctness: the primary reward (the first with positive weight) is 1
    and no gate closed. Independent of the per-iteration threshold, so eval scores stay
    comparable across iterations."""
    primary = next((s for s in specs if s.weight > 0), None)
    if primary is None or scored.gated:
        return False
    return scored.rewards.get(primary.name, 0.0) >= 1.0


__all__ = [
    "REGISTRY",
    "RewardResult",
    "Scored",
    "is_correct",
    "score_batch",
    "score_one",
]

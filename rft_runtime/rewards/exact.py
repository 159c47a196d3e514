"""type: exact — the stripped completion equals the reference answer."""

from __future__ import annotations

from ..config.spec import RewardSpec
from .base import RewardResult


def exact_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return RewardResult(1.0 if completion.strip() == answer.strip() else 0.0)

"""type: exact — the stripped completion equals the reference answer (`ignoreCase` optional)."""

from __future__ import annotations

from ..config.spec import RewardSpec
from .base import RewardResult


def exact_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    got, want = completion.strip(), answer.strip()
    if spec.ignore_case:
        got, want = got.casefold(), want.casefold()
    return RewardResult(1.0 if got == want else 0.0)

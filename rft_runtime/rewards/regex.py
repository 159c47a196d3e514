"""type: regex — the completion contains a match of `pattern` (format rewards)."""

from __future__ import annotations

import re
from functools import lru_cache

from ..config.spec import RewardSpec
from .base import RewardResult, zero


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def regex_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    if not spec.pattern:
        return zero("no pattern configured")
    try:
        compiled = _compiled(spec.pattern)
    except re.error as exc:
        return zero(f"invalid pattern: {exc}")
    return RewardResult(1.0 if compiled.search(completion) else 0.0)

"""type: numeric — the last number in the completion matches the answer (relative tolerance)."""

from __future__ import annotations

import math
import re

from ..config.spec import RewardSpec
from .base import RewardResult, zero

# 1,234.5  -7  .5  3e-4  (thousands separators only in groups of three)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
DEFAULT_TOLERANCE = 1e-9


def numbers(text: str) -> list[float]:
    """Every number in the text, in order."""
    found = []
    for match in _NUMBER.finditer(text):
        token = match.group().replace(",", "")
        if not any(ch.isdigit() for ch in token):
            continue
        try:
            found.append(float(token))
        except ValueError:
            continue
    return found


def numeric_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    expected = numbers(answer)
    if len(expected) != 1:
        return zero("reference answer is not a single number")
    got = numbers(completion)
    if not got:
        return zero("no number found in completion")
    tolerance = DEFAULT_TOLERANCE if spec.tolerance is None else spec.tolerance
    ok = math.isclose(got[-1], expected[0], rel_tol=tolerance, abs_tol=1e-12)
    return RewardResult(1.0 if ok else 0.0)

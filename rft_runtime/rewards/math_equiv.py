"""type: math — the answer is mathematically equivalent to the reference (math-verify)."""

from __future__ import annotations

from math_verify import parse, verify

from ..config.spec import RewardSpec
from .base import RewardResult, zero

TAIL_CHARS = 4000  # the final answer lives at the end; parsing all of a long ramble is slow


def parse_reference(answer: str) -> list[object]:
    """References are usually bare LaTeX (`\\sqrt{8}`, `1 + x^2`), which math-verify only reads
    whole inside math delimiters (bare, it finds `1`); so parse the delimited form first."""
    gold = parse(f"${answer}$") if "$" not in answer else []
    return list(gold or parse(answer))


def math_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    gold = parse_reference(answer)
    if not gold:
        return zero("reference answer could not be parsed")
    predicted = parse(completion[-TAIL_CHARS:])
    if not predicted:
        return zero("no answer found in completion")
    return RewardResult(1.0 if verify(gold, predicted) else 0.0)

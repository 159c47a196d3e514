"""Drop prompts the policy already solves: nothing left to learn from them."""

from __future__ import annotations

from .base import Sample


def pass_rate(group: list[Sample], threshold: float) -> float:
    """Fraction of the prompt's samples at or above the reward threshold (0 when empty)."""
    return sum(s.reward >= threshold for s in group) / len(group) if group else 0.0


def is_too_easy(group: list[Sample], threshold: float, drop_above: float | None) -> bool:
    return drop_above is not None and bool(group) and pass_rate(group, threshold) >= drop_above

"""Keep at most k samples per prompt: the best ones (so one easy prompt cannot dominate)."""

from __future__ import annotations

from .base import Sample, best_first


def max_per_prompt(group: list[Sample], k: int) -> list[Sample]:
    return best_first(group)[:k]

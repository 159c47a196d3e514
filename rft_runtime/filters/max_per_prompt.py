"""Keep at most k samples per prompt: the best ones (so one easy prompt cannot dominate)."""

from __future__ import annotations

from .base import Sample, best_first


def max_per_prompt(group: list[Sample], k: int, prefer: str = "first") -> list[Sample]:
    """The k highest rewarded; among equal rewards the first sampled, or with
    `prefer="shortest"` the shortest (ties of length again by sampling order)."""
    if prefer == "shortest":
        return sorted(group, key=lambda s: (-s.reward, len(s.completion), s.index))[:k]
    return best_first(group)[:k]

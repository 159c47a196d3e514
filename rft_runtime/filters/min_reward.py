"""Keep samples whose total reward reaches the iteration's threshold."""

from __future__ import annotations

from .base import Sample


def min_reward(group: list[Sample], threshold: float) -> list[Sample]:
    return [s for s in group if s.reward >= threshold]

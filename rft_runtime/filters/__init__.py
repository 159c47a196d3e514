"""Filters: pure functions from scored samples (grouped by prompt) to training data.

Order per prompt: dedup -> drop too-easy prompts -> min reward -> at most k best ->
(optionally) pair each kept sample with the prompt's lowest-reward sample.
A new filter is a new file plus one step in `apply`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config.spec import FilterSpec
from .base import Sample, best_first, by_prompt
from .dedup import dedup
from .drop_easy import is_too_easy, pass_rate
from .max_per_prompt import max_per_prompt
from .min_reward import min_reward
from .rejected import lowest, pairs_with_lowest


@dataclass
class FilterResult:
    kept: list[Sample] = field(default_factory=list)
    pairs: list[tuple[Sample, Sample]] = field(default_factory=list)
    dropped_easy: list[str] = field(default_factory=list)
    duplicates: int = 0


def apply(spec: FilterSpec, threshold: float, samples: Iterable[Sample]) -> FilterResult:
    """Run every filter; `threshold` is the iteration's min reward (schedule applied)."""
    result = FilterResult()
    for prompt_id, group in by_prompt(samples).items():
        unique = dedup(group) if spec.dedup else group
        result.duplicates += len(group) - len(unique)
        if is_too_easy(group, threshold, spec.drop_easy_above):
            result.dropped_easy.append(prompt_id)
            continue
        chosen = max_per_prompt(min_reward(unique, threshold), spec.max_per_prompt)
        result.kept.extend(chosen)
        if spec.rejected == "lowest":
            result.pairs.extend(pairs_with_lowest(chosen, unique))
    return result


__all__ = [
    "FilterResult",
    "Sample",
    "apply",
    "best_first",
    "by_prompt",
    "dedup",
    "is_too_easy",
    "lowest",
    "max_per_prompt",
    "min_reward",
    "pairs_with_lowest",
    "pass_rate",
]

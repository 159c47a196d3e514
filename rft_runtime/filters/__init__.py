"""Filters: pure functions from scored samples (grouped by prompt) to training data.

Order per prompt: length -> language -> dedup -> near-duplicates -> drop too-easy prompts
(judged on all unhinted samples) -> min reward -> drop truncated -> at most k best -> (optionally)
pair each kept sample with the prompt's lowest-reward sample (truncated ones included: a cut
completion is still a fair rejected one). Each dropping step counts what it dropped
in `FilterResult.dropped` (reported in metrics.json as `dropped_by_filter`).
A new filter is a new file plus one step in `apply`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config.filter_spec import FilterSpec
from .base import Sample, best_first, by_prompt
from .dedup import dedup
from .drop_easy import is_too_easy, pass_rate
from .language import in_language
from .length import length_filter
from .max_per_prompt import max_per_prompt
from .min_reward import min_reward
from .near_dup import near_dedup
from .rejected import lowest, pairs_with_lowest
from .truncated import finished_only


@dataclass
class FilterResult:
    kept: list[Sample] = field(default_factory=list)
    pairs: list[tuple[Sample, Sample]] = field(default_factory=list)
    dropped_easy: list[str] = field(default_factory=list)
    duplicates: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    """Samples each dropping filter removed: length, language, duplicates, near_duplicates,
    easy_prompt, min_reward, truncated, max_per_prompt."""

    def count(self, name: str, before: int, after: int) -> None:
        self.dropped[name] = self.dropped.get(name, 0) + before - after


def apply(spec: FilterSpec, threshold: float, samples: Iterable[Sample]) -> FilterResult:
    """Run every filter; `threshold` is the iteration's min reward (schedule applied)."""
    result = FilterResult()
    for prompt_id, group in by_prompt(samples).items():
        candidates = group
        if spec.length is not None:
            kept = length_filter(candidates, spec.length)
            result.count("length", len(candidates), len(kept))
            candidates = kept
        if spec.language is not None:
            kept = in_language(candidates, spec.language)
            result.count("language", len(candidates), len(kept))
            candidates = kept
        unique = dedup(candidates) if spec.dedup else candidates
        result.duplicates += len(candidates) - len(unique)
        result.count("duplicates", len(candidates), len(unique))
        if spec.near_duplicates is not None:
            kept = near_dedup(unique, spec.near_duplicates)
            result.count("near_duplicates", len(unique), len(kept))
            unique = kept
        own = [s for s in group if not s.hinted]  # the policy's pass rate: no hint shown
        if is_too_easy(own, threshold, spec.drop_easy_above):
            result.dropped_easy.append(prompt_id)
            result.count("easy_prompt", len(unique), 0)
            continue
        passing = min_reward(unique, threshold)
        result.count("min_reward", len(unique), len(passing))
        if spec.drop_truncated:
            finished = finished_only(passing)
            result.count("truncated", len(passing), len(finished))
            passing = finished
        chosen = max_per_prompt(passing, spec.max_per_prompt, spec.prefer)
        result.count("max_per_prompt", len(passing), len(chosen))
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
    "finished_only",
    "in_language",
    "is_too_easy",
    "length_filter",
    "lowest",
    "max_per_prompt",
    "min_reward",
    "near_dedup",
    "pairs_with_lowest",
    "pass_rate",
]

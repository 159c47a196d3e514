"""The scored sample the filters see, and grouping by prompt."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One completion of one prompt with its total reward; `index` is its position among the
    prompt's completions and breaks ties deterministically. `finished` is false when the
    sampler cut the completion at its token limit; `hinted` when it answered the prompt with
    its reference answer shown (rationalization), so it says nothing of the policy's own
    pass rate."""

    prompt_id: str
    index: int
    completion: str
    reward: float
    finished: bool = True
    hinted: bool = False


def by_prompt(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Group samples by prompt id, keeping first-seen prompt order and index order."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.prompt_id, []).append(sample)
    for group in groups.values():
        group.sort(key=lambda s: s.index)
    return groups


def best_first(samples: Iterable[Sample]) -> list[Sample]:
    """Highest reward first; ties by lower index (deterministic)."""
    return sorted(samples, key=lambda s: (-s.reward, s.index))

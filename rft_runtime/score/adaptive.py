"""Adaptive sampling in two rounds (`sampler.adaptive`), pure helpers.

Most of a prompt's samples change nothing once its outcome is known: a prompt that already
has `filter.maxPerPrompt` answers to keep gets no more training data from further samples,
and a prompt the policy solves almost every time is dropped by `dropEasyAbove` anyway. So
the first round asks half the samples of every prompt and the second round asks the rest
only of the prompts still open. Unsolved prompts always stay open: an unhinted correct
answer is worth more than a hinted one (measured: sending them straight to the hint round
made the cold start's training data learn 0.55 instead of 0.69 held-out pass@1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import filters
from ..config.filter_spec import FilterSpec
from .data import PromptRow
from .outputs import to_samples
from .rounds import is_solved

ROUND_REST = "rest"


def first_round(n: int) -> int:
    """Samples per prompt of the first round: half, rounded up (never all of n >= 2)."""
    return (n + 1) // 2


def is_settled(record: dict[str, Any], spec: FilterSpec, threshold: float) -> bool:
    """Whether more unhinted samples of this prompt would change nothing it contributes."""
    if not is_solved(record):
        return False
    result = filters.apply(spec, threshold, to_samples([record]))
    if result.dropped_easy:
        return True
    enough = result.pairs if spec.rejected == "lowest" else result.kept
    return len(enough) >= spec.max_per_prompt


def unsettled(
    rows: Sequence[PromptRow],
    records: Sequence[dict[str, Any]],
    spec: FilterSpec,
    threshold: float,
) -> list[PromptRow]:
    """Rows (in order) the second round asks; records align with rows."""
    return [
        row
        for row, record in zip(rows, records, strict=True)
        if not is_settled(record, spec, threshold)
    ]

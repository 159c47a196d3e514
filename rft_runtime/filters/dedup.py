"""Drop exact-duplicate completions of the same prompt (keep the first of each)."""

from __future__ import annotations

from .base import Sample


def dedup(group: list[Sample]) -> list[Sample]:
    seen: set[str] = set()
    kept = []
    for sample in sorted(group, key=lambda s: s.index):
        if sample.completion not in seen:
            seen.add(sample.completion)
            kept.append(sample)
    return kept

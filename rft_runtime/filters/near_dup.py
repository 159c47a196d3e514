"""Drop near-duplicate completions of one prompt: a completion at least `threshold` similar
to an earlier kept one goes (the lowest index of each cluster stays).

- shingles: Jaccard similarity of the sets of `shingleSize`-word shingles of the
  normalized texts (exact Jaccard: a prompt has at most a few hundred completions, so no
  MinHash approximation is needed);
- embedding: cosine similarity of sentence embeddings (rewards.embedding).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..config.filter_spec import NearDuplicateSpec
from .base import Sample

_WORD = re.compile(r"\w+")


def shingles(text: str, size: int) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    if len(words) < size:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _greedy(count: int, similar: Sequence[Sequence[float]], threshold: float) -> list[int]:
    kept: list[int] = []
    for i in range(count):
        if all(similar[i][j] < threshold for j in kept):
            kept.append(i)
    return kept


def near_dedup(group: list[Sample], spec: NearDuplicateSpec) -> list[Sample]:
    ordered = sorted(group, key=lambda s: s.index)
    if len(ordered) < 2:
        return ordered
    if spec.method == "embedding":
        from ..rewards.embedding import embed

        vectors = embed([s.completion for s in ordered])
        matrix = (vectors @ vectors.T).tolist()
    else:
        sets = [shingles(s.completion, spec.shingle_size) for s in ordered]
        matrix = [[jaccard(a, b) for b in sets] for a in sets]
    return [ordered[i] for i in _greedy(len(ordered), matrix, spec.threshold)]

"""Drop completions the sampler cut at its token limit: an unfinished answer is no
demonstration to imitate, whatever number a reward found in it."""

from __future__ import annotations

from .base import Sample


def finished_only(group: list[Sample]) -> list[Sample]:
    return [s for s in group if s.finished]

"""Preference pairs for DPO: each chosen sample against the prompt's lowest-reward one."""

from __future__ import annotations

from .base import Sample


def lowest(group: list[Sample]) -> Sample | None:
    """The worst sample; ties by lower index."""
    return min(group, key=lambda s: (s.reward, s.index), default=None)


def pairs_with_lowest(chosen: list[Sample], group: list[Sample]) -> list[tuple[Sample, Sample]]:
    """(chosen, rejected) pairs, only where the rejected one is strictly worse."""
    worst = lowest(group)
    if worst is None:
        return []
    return [(c, worst) for c in chosen if worst.reward < c.reward and c is not worst]

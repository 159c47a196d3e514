"""Deterministic child names: a restarted operator finds what it created before."""

from __future__ import annotations


def sampler_name(run: str, index: int) -> str:
    return f"{run}-it{index}-sampler"


def shared_sampler_name(run: str) -> str:
    """The run's long-lived sampler (sampler.keepAlive): one for every iteration."""
    return f"{run}-sampler"


def score_name(run: str, index: int) -> str:
    return f"{run}-it{index}-score"


def train_name(run: str, index: int) -> str:
    return f"{run}-it{index}-train"

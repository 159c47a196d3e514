"""Metric and summary keys: what the jobs report and the operator reads back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Keys of `seconds` in the job summaries.
EVALUATION_SECONDS = "evaluation"  # scoring Job: the evaluation pass
SAMPLING_SECONDS = "sampling"  # scoring Job: sampling, scoring and filtering
POLICY_LOAD_SECONDS = "policy_load"  # scoring Job: waiting for the sampler to serve its policy
TRAINING_SECONDS = "train"  # training Job: the optimisation steps
# training Job, method grpo: the rest of each step, summed over the steps
GENERATION_SECONDS = "generation"  # waiting for the sampler's completions
SCORING_SECONDS = "scoring"  # the rewards
POLICY_SYNC_SECONDS = "policy_sync"  # writing the new policy and the sampler loading it
TOTAL_SECONDS = "total"  # a job from start to end

PASS_AT_PREFIX = "pass@"


def pass_at(k: int) -> str:
    """The metric of one eval set: pass@<k>."""
    return f"{PASS_AT_PREFIX}{k}"


def score_key(set_name: str, k: int) -> str:
    """The key of one eval score in summaries and status: '<set name>/pass@<k>'."""
    return f"{set_name}/{pass_at(k)}"


def scores_of(metrics_by_set: Mapping[str, Mapping[str, object]]) -> dict[str, float]:
    """'<set>/pass@<k>' for every set's numeric pass@k metric."""
    scores: dict[str, float] = {}
    for name, metrics in metrics_by_set.items():
        for key, value in metrics.items():
            if key.startswith(PASS_AT_PREFIX) and isinstance(value, int | float):
                scores[f"{name}/{key}"] = float(value)
    return scores


def primary_key(set_names: Sequence[str], pass_at_k: Sequence[int]) -> str | None:
    """The primary score: the first set's first pass@k (stop rules and best use it)."""
    return score_key(set_names[0], pass_at_k[0]) if set_names and pass_at_k else None


def primary_score(
    scores: Mapping[str, float], set_names: Sequence[str], pass_at_k: Sequence[int]
) -> float | None:
    """The primary score among `scores`; the first set's pass@1 when its first k is missing."""
    key = primary_key(set_names, pass_at_k)
    if key is None:
        return None
    value = scores.get(key)
    return value if value is not None else scores.get(score_key(set_names[0], 1))

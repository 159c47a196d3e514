"""Which steps iteration k has: the predicates that steer the planner's loop.

Scoring Job k evaluates policy k (when there is an evaluation) and samples the training
data of training k; the scoring Job of index `iterations.max` only evaluates. With method
grpo the scoring Job only evaluates and the training Job samples through the sampler.
"""

from __future__ import annotations

from .api import RFTRunSpec


def does_evaluate(spec: RFTRunSpec, index: int) -> bool:
    """Does scoring Job k run the evaluation pass?"""
    if spec.evaluation is None:
        return False
    return index > 0 or spec.evaluation.evaluate_base


def does_sample(spec: RFTRunSpec, index: int) -> bool:
    """Does scoring Job k sample training data? (Not in the final evaluation pass, and never
    with method grpo: its training Job samples the policy itself.)"""
    return index < spec.iterations.max and not samples_in_training(spec)


def samples_in_training(spec: RFTRunSpec) -> bool:
    """method grpo: the training Job samples through the sampler, so it needs the sampler up
    while it trains and reads no dataset from the scoring Job."""
    return spec.training.method == "grpo"


def needs_policy_server(spec: RFTRunSpec, index: int) -> bool:
    """The sampler Deployment is needed to evaluate, or to sample when there is no teacher."""
    return does_evaluate(spec, index) or (does_sample(spec, index) and spec.sampler.teacher is None)


def min_reward(spec: RFTRunSpec, index: int) -> float:
    """Iteration k's filter threshold (filter.minRewardSchedule, else filter.minReward)."""
    schedule = spec.filter.min_reward_schedule
    if schedule and index < len(schedule):
        return schedule[index]
    return spec.filter.min_reward


def temperature(spec: RFTRunSpec, index: int) -> float:
    """Iteration k's sampling temperature (sampler.temperatureSchedule, its last entry once
    past its end, else sampler.temperature)."""
    schedule = spec.sampler.temperature_schedule
    if schedule:
        return schedule[min(index, len(schedule) - 1)]
    return spec.sampler.temperature

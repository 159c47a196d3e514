"""Reward functions: one file per type, one registry, one way to combine them.

Each reward is a small pure function `(spec, prompt, completion, answer) -> RewardResult`
(per item). Rewards that gain from batching (models, network, parallel sandboxes) also
have a batch form in `BATCHED`, which `score_batch` uses for all completions of a call.
A new reward type is a new file plus one entry in `REGISTRY` (and in `spec.RewardType`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config.spec import RewardSpec
from .base import (
    UNIT,
    RewardResult,
    SafeBatchRewardFn,
    SafeRewardFn,
    bounded,
    guarded,
    guarded_batch,
    zero,
)
from .code import code_reward, code_rewards
from .embedding import embedding_reward, embedding_rewards
from .exact import exact_reward
from .judge import judge_reward, judge_rewards
from .math_equiv import math_reward
from .normalized import normalized_reward
from .numeric import numeric_reward
from .python import python_reward
from .regex import regex_reward
from .reward_models import orm_reward, orm_rewards, prm_reward, prm_rewards
from .similarity import bleu_reward, contains_reward, fuzzy_reward, rouge_reward
from .steps import steps_reward

RANGES: dict[str, tuple[float, float]] = {
    name: UNIT
    for name in (
        "math", "exact", "normalized", "numeric", "regex", "python", "contains", "fuzzy",
        "bleu", "rouge", "embedding", "code", "judge", "orm", "prm", "steps",
    )
}  # fmt: skip
"""The value range each reward type declares; every result is clamped into it (NaN -> low)."""

_SINGLE = {
    "math": math_reward,
    "exact": exact_reward,
    "normalized": normalized_reward,
    "numeric": numeric_reward,
    "regex": regex_reward,
    "python": python_reward,
    "contains": contains_reward,
    "fuzzy": fuzzy_reward,
    "bleu": bleu_reward,
    "rouge": rouge_reward,
    "embedding": embedding_reward,
    "code": code_reward,
    "judge": judge_reward,
    "orm": orm_reward,
    "prm": prm_reward,
    "steps": steps_reward,
}
_BATCH = {
    "embedding": embedding_rewards,
    "code": code_rewards,
    "judge": judge_rewards,
    "orm": orm_rewards,
    "prm": prm_rewards,
}

REGISTRY: dict[str, SafeRewardFn] = {
    name: guarded(fn, RANGES[name]) for name, fn in _SINGLE.items()
}
BATCHED: dict[str, SafeBatchRewardFn] = {
    name: guarded_batch(fn, RANGES[name]) for name, fn in _BATCH.items()
}


def total_bounds(specs: Sequence[RewardSpec]) -> tuple[float, float]:
    """The range of sum of weight * value given each type's declared range."""
    low = sum(min(s.weight * RANGES[s.type][0], s.weight * RANGES[s.type][1]) for s in specs)
    high = sum(max(s.weight * RANGES[s.type][0], s.weight * RANGES[s.type][1]) for s in specs)
    return low, high


@dataclass(frozen=True)
class Scored:
    """The total reward of one completion, with each reward's value and reason."""

    total: float
    rewards: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    gated: bool = False


def score_one(
    specs: Sequence[RewardSpec],
    prompt: str,
    completion: object,
    answer: object,
    columns: Mapping[str, object] | None = None,
) -> Scored:
    """Weighted sum of all rewards; a `gate` reward at 0 zeroes the total."""
    return score_batch(specs, [prompt], [completion], [answer], [columns or {}])[0]


def reference_of(spec: RewardSpec, answer: object, columns: Mapping[str, object]) -> object:
    """The reward's reference: the row's answer, or its `answerField` column (lists and
    objects as JSON); a missing column is a `RewardResult` saying so."""
    if spec.answer_field is None:
        return answer
    if spec.answer_field not in columns:
        return zero(
            f"row has no column {spec.answer_field!r} (rewards[{spec.name}].answerField); "
            "add it to the data or fix answerField"
        )
    value = columns[spec.answer_field]
    if isinstance(value, str):
        return value
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def _results(
    spec: RewardSpec,
    prompts: Sequence[str],
    completions: Sequence[object],
    references: Sequence[object],
) -> list[RewardResult]:
    missing = {i: r for i, r in enumerate(references) if isinstance(r, RewardResult)}
    todo = [i for i in range(len(completions)) if i not in missing]
    batched = BATCHED.get(spec.type)
    if batched is not None:
        done = batched(
            spec,
            [prompts[i] for i in todo],
            [completions[i] for i in todo],
            [references[i] for i in todo],
        )
    else:
        single = REGISTRY[spec.type]
        done = [single(spec, prompts[i], completions[i], references[i]) for i in todo]
    by_index = {**missing, **dict(zip(todo, done, strict=True))}
    return [by_index[i] for i in range(len(completions))]


def score_batch(
    specs: Sequence[RewardSpec],
    prompts: Sequence[str],
    completions: Sequence[object],
    answers: Sequence[object],
    columns: Sequence[Mapping[str, object]] | None = None,
) -> list[Scored]:
    """TRL-style batch scoring: one `Scored` per (prompt, completion, answer); batched
    rewards see the whole batch at once. `columns` are the rows' other fields."""
    count = len(completions)
    if not (len(prompts) == len(answers) == count):
        raise ValueError("prompts, completions and answers differ in length")
    rows = list(columns) if columns is not None else [{} for _ in range(count)]
    per_spec = [
        _results(
            spec,
            prompts,
            completions,
            [reference_of(spec, a, r) for a, r in zip(answers, rows, strict=True)],
        )
        for spec in specs
    ]
    low, high = total_bounds(specs)
    scored = []
    for index in range(count):
        values: dict[str, float] = {}
        reasons: dict[str, str] = {}
        total, gated = 0.0, False
        for spec, results in zip(specs, per_spec, strict=True):
            result = results[index]
            value = bounded(result.value, *RANGES[spec.type])
            values[spec.name] = value
            if result.reason:
                reasons[spec.name] = result.reason
            total += spec.weight * value
            gated = gated or (spec.gate and value == 0.0)
        total = bounded(total, low, high) if low <= high else 0.0
        scored.append(Scored(0.0 if gated else total, values, reasons, gated))
    return scored


def is_correct(specs: Sequence[RewardSpec], scored: Scored) -> bool:
    """Evaluation correctness: the primary reward (the first with positive weight) is 1
    and no gate closed. Independent of the per-iteration threshold, so eval scores stay
    comparable across iterations."""
    primary = next((s for s in specs if s.weight > 0), None)
    if primary is None or scored.gated:
        return False
    return scored.rewards.get(primary.name, 0.0) >= 1.0


__all__ = [
    "BATCHED",
    "RANGES",
    "REGISTRY",
    "RewardResult",
    "Scored",
    "is_correct",
    "score_batch",
    "score_one",
]

"""type: orm and type: prm — rewards from a sequence-classification model.

orm (outcome reward model): one score per (prompt, completion): the model reads the
  prompt and the completion (through the tokenizer's chat template when it has one,
  else "prompt\\n\\ncompletion") and its head gives a logit; the reward is its sigmoid
  (one label) or the probability of the last label (two or more labels).
prm (process reward model): the completion is split into steps at `stepSeparator`
  (default a blank line); the model scores every prefix (prompt + steps 1..i), and
  `aggregate` combines the per-step scores: min (default: one bad step spoils the
  solution), last, or mean.
Both run in batches of `batchSize` sequences, right-padded, with the attention mask, so a
batch gives the same scores as one sequence at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..config.spec import RewardSpec
from .base import RewardResult, zero
from .model_dirs import ModelUnavailable, local_model_dir, offline

DEFAULT_BATCH = 16
DEFAULT_MAX_LENGTH = 2048
DEFAULT_SEPARATOR = "\n\n"
MAX_STEPS = 64


@lru_cache(maxsize=2)
def load(model_dir: str) -> tuple[Any, Any]:
    offline()
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return tokenizer, model


def _text(tokenizer: Any, prompt: str, completion: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion},
        ]
        return str(tokenizer.apply_chat_template(messages, tokenize=False))
    return f"{prompt}\n\n{completion}"


def score_texts(
    model_uri: str,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = DEFAULT_BATCH,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> list[float]:
    """One score in [0, 1] per (prompt, completion), `batch_size` sequences per forward."""
    import torch

    tokenizer, model = load(str(local_model_dir(model_uri)))
    texts = [_text(tokenizer, p, c) for p, c in pairs]
    scores: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            logits = model(**batch).logits.float()
            if logits.shape[-1] == 1:
                values = torch.sigmoid(logits[:, 0])
            else:
                values = torch.softmax(logits, dim=-1)[:, -1]
            scores.extend(float(v) for v in values)
    return scores


def split_steps(completion: str, separator: str = DEFAULT_SEPARATOR) -> list[str]:
    """Non-empty steps; more than MAX_STEPS are merged into the last one."""
    steps = [s for s in completion.split(separator) if s.strip()]
    if len(steps) > MAX_STEPS:
        steps = [*steps[: MAX_STEPS - 1], separator.join(steps[MAX_STEPS - 1 :])]
    return steps


def aggregate(scores: Sequence[float], how: str) -> float:
    if not scores:
        raise ValueError("no steps to aggregate")
    if how == "min":
        return min(scores)
    if how == "last":
        return scores[-1]
    if how == "mean":
        return sum(scores) / len(scores)
    raise ValueError(f"rewards[].aggregate {how!r} is not min, last or mean")


def _settings(spec: RewardSpec) -> tuple[str, int, int]:
    if not spec.model:
        raise ModelUnavailable(f"rewards[{spec.name}].model is required for type {spec.type}")
    return spec.model, spec.batch_size or DEFAULT_BATCH, spec.max_length or DEFAULT_MAX_LENGTH


def orm_rewards(
    spec: RewardSpec, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
) -> list[RewardResult]:
    model, batch, length = _settings(spec)
    scores = score_texts(
        model, list(zip(prompts, completions, strict=True)), batch_size=batch, max_length=length
    )
    return [RewardResult(s) for s in scores]


def step_scores(
    spec: RewardSpec, prompts: Sequence[str], completions: Sequence[str]
) -> list[list[float]]:
    """Per completion, the score of every step prefix (all prefixes of all completions are
    batched together)."""
    model, batch, length = _settings(spec)
    separator = spec.step_separator or DEFAULT_SEPARATOR
    prefixes: list[tuple[str, str]] = []
    counts: list[int] = []
    for prompt, completion in zip(prompts, completions, strict=True):
        steps = split_steps(completion, separator)
        counts.append(len(steps))
        prefixes.extend((prompt, separator.join(steps[: i + 1])) for i in range(len(steps)))
    flat = score_texts(model, prefixes, batch_size=batch, max_length=length)
    out, start = [], 0
    for count in counts:
        out.append(flat[start : start + count])
        start += count
    return out


def prm_rewards(
    spec: RewardSpec, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
) -> list[RewardResult]:
    how = spec.aggregate or "min"
    return [
        RewardResult(aggregate(scores, how)) if scores else zero("no steps")
        for scores in step_scores(spec, prompts, completions)
    ]


def orm_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return orm_rewards(spec, [prompt], [completion], [answer])[0]


def prm_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    return prm_rewards(spec, [prompt], [completion], [answer])[0]

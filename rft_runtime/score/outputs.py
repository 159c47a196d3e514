"""Final outputs, derived only from progress records (pure functions; the job writes them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config.jobs import PromptFormat
from ..filters import FilterResult, Sample, by_prompt, pass_rate
from .formatting import chat_messages, raw_text
from .passk import mean_pass_at_k
from .rounds import ROUND_HINT


def _finished(completion: dict[str, Any]) -> bool:
    """Cut at the token limit: vLLM's finish reason `length`."""
    return completion.get("finish_reason") != "length"


def _hinted(completion: dict[str, Any]) -> bool:
    return completion.get("round") == ROUND_HINT


def _unfinished(key: str, sample: Sample) -> dict[str, bool]:
    """`<key>_finished: false` on rows whose completion was cut (training adds no EOS)."""
    return {} if sample.finished else {f"{key}_finished": False}


def to_samples(records: Sequence[dict[str, Any]]) -> list[Sample]:
    return [
        Sample(r["id"], c["index"], c["text"], float(c["reward"]), _finished(c), _hinted(c))
        for r in records
        for c in r["completions"]
    ]


def eval_metrics(records: Sequence[dict[str, Any]], ks: Sequence[int]) -> dict[str, Any]:
    """pass@1 (mean fraction correct) and unbiased pass@k for every k <= samples per prompt."""
    counts = [(len(r["completions"]), sum(c["correct"] for c in r["completions"])) for r in records]
    scored = [(n, c) for n, c in counts if n > 0]
    metrics: dict[str, Any] = {
        "prompts": len(records),
        "samples": sum(n for n, _ in counts),
        "errors": sum(1 for r in records if r.get("error")),
        "tokens": sum(int(r.get("tokens", 0)) for r in records),
    }
    for k in sorted({1, *ks}):
        value = mean_pass_at_k(scored, k)
        if value is not None:
            # prompts the endpoint rejected count as failed
            metrics[f"pass@{k}"] = value * len(scored) / len(records) if records else 0.0
    return metrics


def eval_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "prompt": r["prompt"],
            "answer": r["answer"],
            "n": len(r["completions"]),
            "correct": sum(c["correct"] for c in r["completions"]),
            "completions": r["completions"],
            **({"error": r["error"]} if r.get("error") else {}),
        }
        for r in records
    ]


def sample_rows(records: Sequence[dict[str, Any]], result: FilterResult) -> list[dict[str, Any]]:
    """Every completion with its rewards, and whether the filters kept it."""
    kept = {(s.prompt_id, s.index) for s in result.kept}
    rejected = {(r.prompt_id, r.index) for _, r in result.pairs}
    easy = set(result.dropped_easy)
    return [
        {
            "prompt_id": r["id"],
            "prompt": r["prompt"],
            "answer": r["answer"],
            **c,
            "kept": (r["id"], c["index"]) in kept,
            "rejected": (r["id"], c["index"]) in rejected,
            "dropped_easy": r["id"] in easy,
        }
        for r in records
        for c in r["completions"]
    ]


def _prompt_fields(fmt: PromptFormat, prompt: str) -> dict[str, Any]:
    """`messages`: the prompt as chat messages (what the training Job tokenizes with the
    chat template); `prompt`: the raw text sent, only when no chat template was used."""
    fields: dict[str, Any] = {"messages": chat_messages(fmt, prompt)}
    if not fmt.use_chat_template:
        fields["prompt"] = raw_text(fmt, prompt)
    return fields


def sft_rows(
    records: Sequence[dict[str, Any]], result: FilterResult, fmt: PromptFormat
) -> list[dict[str, Any]]:
    """{prompt_id, messages, completion, reward} (+ completion_finished: false for a cut
    completion): the training Job's SFT rows."""
    by_id = {r["id"]: r for r in records}
    return [
        {
            "prompt_id": s.prompt_id,
            **_prompt_fields(fmt, by_id[s.prompt_id]["prompt"]),
            "completion": s.completion,
            "reward": s.reward,
            **_unfinished("completion", s),
        }
        for s in result.kept
    ]


def dpo_rows(
    records: Sequence[dict[str, Any]], result: FilterResult, fmt: PromptFormat
) -> list[dict[str, Any]]:
    """{prompt_id, messages, chosen, rejected, chosen_reward, rejected_reward}: DPO rows."""
    by_id = {r["id"]: r for r in records}
    return [
        {
            "prompt_id": chosen.prompt_id,
            **_prompt_fields(fmt, by_id[chosen.prompt_id]["prompt"]),
            "chosen": chosen.completion,
            "rejected": rejected.completion,
            "chosen_reward": chosen.reward,
            "rejected_reward": rejected.reward,
            **_unfinished("chosen", chosen),
            **_unfinished("rejected", rejected),
        }
        for chosen, rejected in result.pairs
    ]


def mean_prompt_pass_rate(samples: Sequence[Sample], threshold: float) -> float:
    """The mean over prompts of each prompt's pass rate: with adaptive sampling, prompts
    have different sample counts, and a plain fraction of samples would weigh the hard
    ones (sampled more) more (equal counts: the same figure)."""
    groups = by_prompt(samples).values()
    return sum(pass_rate(g, threshold) for g in groups) / len(groups) if groups else 0.0


def train_metrics(
    records: Sequence[dict[str, Any]], result: FilterResult, threshold: float
) -> dict[str, Any]:
    samples = to_samples(records)
    passing = [s for s in samples if s.reward >= threshold]
    rewards: dict[str, list[float]] = {}
    for r in records:
        for c in r["completions"]:
            for name, value in c["rewards"].items():
                rewards.setdefault(name, []).append(value)
    return {
        "prompts": len(records),
        "samples": len(samples),
        "errors": sum(1 for r in records if r.get("error")),
        "pass_rate": mean_prompt_pass_rate(samples, threshold),
        "mean_reward": sum(s.reward for s in samples) / len(samples) if samples else 0.0,
        "mean_reward_by_name": {k: sum(v) / len(v) for k, v in rewards.items()},
        "prompts_with_correct": len({s.prompt_id for s in passing}),
        "kept": len(result.kept),
        "pairs": len(result.pairs),
        "duplicates": result.duplicates,
        "dropped_by_filter": dict(result.dropped),
        "dropped_easy": len(result.dropped_easy),
        "tokens": sum(int(r.get("tokens", 0)) for r in records),
        "threshold": threshold,
    }

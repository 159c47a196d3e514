"""The scoring Job's datasets as token ids: prompt from the chat template, loss on the completion.

sft.jsonl rows: {prompt_id, messages, completion, reward} (+ prompt: the raw text sent when
the chat template was not used; then it is what gets tokenized)
dpo.jsonl rows: {prompt_id, messages, chosen, rejected, chosen_reward, rejected_reward}
Prompt and completion are tokenized separately (as the sampler produced them) and a
completion ends with EOS, so the trained model learns to stop; one the sampler cut at its
token limit (`<key>_finished: false`) gets none, so the model does not learn to stop there.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..jsonl import JsonlError, read_jsonl
from .failure import TrainFailure

IGNORE = -100  # label of positions that carry no loss (prompt, padding)


@dataclass
class Sequence:
    """One prompt + completion: ids, and labels equal to ids on completion tokens only."""

    input_ids: list[int]
    labels: list[int]


@dataclass
class Example:
    """SFT: `chosen` only. DPO: `chosen` and `rejected` share the prompt."""

    chosen: Sequence
    rejected: Sequence | None = None

    def length(self) -> int:
        extra = len(self.rejected.input_ids) if self.rejected else 0
        return max(len(self.chosen.input_ids), extra)


@dataclass
class Dataset:
    examples: list[Example] = field(default_factory=list)
    rows: int = 0
    truncated: int = 0  # sequences cut at max_seq_len (still trained on)
    dropped: int = 0  # rows whose prompt alone filled max_seq_len (no completion left)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """JSON Lines; a missing file or a broken line is the user's to fix, so say which."""
    path = Path(path)
    if not path.is_file():
        raise TrainFailure(
            "DatasetMissing",
            f"dataset {path} not found; the scoring Job writes it (check training.method "
            "matches the dataset it wrote: sft.jsonl or dpo.jsonl)",
        )
    rows = []
    try:
        for number, row in read_jsonl(path):
            if not isinstance(row, dict):
                raise TrainFailure(
                    "DatasetInvalid", f"{path}:{number}: expected a JSON object per line"
                )
            rows.append(row)
    except JsonlError as exc:
        raise TrainFailure("DatasetInvalid", str(exc)) from exc
    return rows


def prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The chat template with the generation prompt, exactly what the sampler was sent."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def raw_prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """A prompt sent without the chat template: tokenized as vLLM's completions endpoint
    does (with the tokenizer's special tokens, e.g. a BOS)."""
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def completion_ids(tokenizer: Any, completion: str, finished: bool = True) -> list[int]:
    ids = list(tokenizer(completion, add_special_tokens=False)["input_ids"])
    return [*ids, tokenizer.eos_token_id] if finished else ids


def encode(prompt: list[int], completion: list[int], max_len: int) -> tuple[Sequence | None, bool]:
    """Join and cut at max_len; None when no completion token is left to learn from."""
    ids = prompt + completion
    labels = [IGNORE] * len(prompt) + completion
    truncated = len(ids) > max_len
    ids, labels = ids[:max_len], labels[:max_len]
    if all(label == IGNORE for label in labels[1:]):  # position 0 is never predicted
        return None, truncated
    return Sequence(ids, labels), truncated


def _field(row: dict[str, Any], key: str, path: str, number: int) -> Any:
    if key not in row:
        raise TrainFailure(
            "DatasetInvalid",
            f"{path} row {number} has no '{key}'; training.method must match the dataset "
            "(sft: messages+completion, dpo: messages+chosen+rejected)",
        )
    return row[key]


def tokenize(
    rows: list[dict[str, Any]], tokenizer: Any, method: str, max_len: int, path: str = "dataset"
) -> Dataset:
    """Rows → examples; counts truncated sequences and rows dropped for having no room left."""
    data = Dataset(rows=len(rows))
    keys = ["completion"] if method == "sft" else ["chosen", "rejected"]
    for number, row in enumerate(rows, 1):
        prompt = (
            raw_prompt_ids(tokenizer, row["prompt"])  # sent as raw text (no chat template)
            if isinstance(row.get("prompt"), str)
            else prompt_ids(tokenizer, _field(row, "messages", path, number))
        )
        seqs = []
        for key in keys:
            finished = row.get(f"{key}_finished", True) is not False
            completion = completion_ids(tokenizer, _field(row, key, path, number), finished)
            seq, cut = encode(prompt, completion, max_len)
            data.truncated += int(cut)
            seqs.append(seq)
        if any(seq is None for seq in seqs):
            data.dropped += 1
            continue
        chosen = seqs[0]
        assert chosen is not None
        data.examples.append(Example(chosen, seqs[1] if len(seqs) > 1 else None))
    return data


def length_grouped_batches(
    lengths: list[int], batch_size: int, seed: int, epoch: int, group: int = 50
) -> list[list[int]]:
    """Shuffle, sort by length inside windows of `group` batches, shuffle the batches.

    Similar lengths share a batch (little padding) while the order stays random; the same
    (seed, epoch) gives the same batches on every rank and after a restart.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def rank_batches(
    batches: list[list[int]], world: int, rank: int, accumulation: int
) -> list[list[int]]:
    """This rank's micro-batches: every rank gets the same count, a multiple of accumulation.

    Batches wrap around to fill the last optimizer step, so collectives never wait on a
    rank that ran out of data.
    """
    per_rank = math.ceil(len(batches) / world)
    per_rank = math.ceil(per_rank / accumulation) * accumulation
    padded = [batches[i % len(batches)] for i in range(per_rank * world)]
    return padded[rank::world]


def steps_per_epoch(n_examples: int, batch_size: int, world: int, accumulation: int) -> int:
    """Optimizer steps per epoch, as `rank_batches` lays them out."""
    n_batches = math.ceil(n_examples / batch_size)
    return math.ceil(math.ceil(n_batches / world) / accumulation)


def collate(seqs: list[Sequence], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence; padding carries no attention and no loss."""
    width = max(len(s.input_ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        n = len(seq.input_ids)
        ids[row, :n] = torch.tensor(seq.input_ids)
        labels[row, :n] = torch.tensor(seq.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_for(examples: list[Example], indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """SFT: the sequences. DPO: chosen rows first, then rejected rows, in one forward pass."""
    picked = [examples[i] for i in indices]
    seqs = [e.chosen for e in picked]
    if picked and picked[0].rejected is not None:
        seqs += [e.rejected for e in picked if e.rejected is not None]
    return collate(seqs, pad_id)

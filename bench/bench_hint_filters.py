"""Should the hinted answers of `sampler.rationalize` be filtered before training?

A hint makes the final number right, and the example's numeric reward reads only that
number, so many verified hinted answers ramble and end on it. This writes variants of one
iteration's `sft.jsonl` for `bench/bench_offline_sft.py` to train and compare:

- `all`: as the scoring Job kept it;
- `nohint`: without the hinted answers;
- `cap1`: at most one hinted answer per prompt;
- `verified`: a hinted answer only if the policy, asked *without* the hint, continues its
  text cut before the last occurrence of the reference answer to an answer the rewards
  still accept (greedy, a few tokens).

    .venv/bin/python -m bench.bench_hint_filters examples/arith-smollm2.yaml \
        --init ~/.cache/rft/models/smollm2-135m-instruct \
        --iteration RUN/storage/arith-smollm2/it-0 --out /tmp/hints
    for v in all nohint cap1 verified; do .venv/bin/python -m bench.bench_offline_sft \
        examples/arith-smollm2.yaml --init ~/.cache/rft/models/smollm2-135m-instruct \
        --data /tmp/hints/sft-$v.jsonl --out /tmp/hints/off-$v.json; done
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.bench_reference_loop import load_spec
from rft_runtime.jsonl import atomic_write_jsonl, loads_lines
from rft_runtime.score.rounds import ROUND_HINT

Key = tuple[str, str]  # (prompt_id, completion text)


def hinted_kept(samples: Sequence[dict[str, Any]]) -> set[Key]:
    """The kept completions that the hint round wrote (samples.jsonl marks their round)."""
    return {
        (s["prompt_id"], s["text"])
        for s in samples
        if s.get("kept") and s.get("round") == ROUND_HINT
    }


def key(row: dict[str, Any]) -> Key:
    return (row["prompt_id"], row["completion"])


def capped(
    sft: Sequence[dict[str, Any]], hinted: set[Key], per_prompt: int
) -> list[dict[str, Any]]:
    """Every unhinted row, and the first `per_prompt` hinted rows of each prompt."""
    counts: dict[str, int] = {}
    rows = []
    for row in sft:
        if key(row) in hinted:
            counts[row["prompt_id"]] = counts.get(row["prompt_id"], 0) + 1
            if counts[row["prompt_id"]] > per_prompt:
                continue
        rows.append(row)
    return rows


def variants(
    sft: Sequence[dict[str, Any]], hinted: set[Key], verified: set[Key]
) -> dict[str, list[dict[str, Any]]]:
    return {
        "all": list(sft),
        "nohint": [r for r in sft if key(r) not in hinted],
        "cap1": capped(sft, hinted, 1),
        "verified": [r for r in sft if key(r) not in hinted or key(r) in verified],
    }


def cut_before_answer(text: str, answer: str) -> str | None:
    """The completion up to the last occurrence of the reference answer (None: absent)."""
    at = text.rfind(answer)
    return None if at < 0 else text[:at]


def verify_without_hint(
    manifest: Path, init: str, rows: Sequence[dict[str, Any]], tasks: dict[str, tuple[str, str]]
) -> set[Key]:
    """The hinted rows whose text, cut before the answer, the policy finishes correctly from
    the unhinted prompt. `tasks`: prompt id -> (prompt, reference answer)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rft_runtime.rewards import is_correct, score_batch
    from rft_runtime.train.loading import load_tokenizer

    spec = load_spec(manifest)
    tokenizer = load_tokenizer(init)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32).eval()
    asks = []
    for row in rows:
        prefix = cut_before_answer(row["completion"], tasks[row["prompt_id"]][1])
        if prefix is not None:
            chat = tokenizer.apply_chat_template(
                row["messages"], add_generation_prompt=True, tokenize=False
            )
            asks.append((row, prefix, chat + prefix))
    passed: set[Key] = set()
    for start in range(0, len(asks), 32):
        chunk = asks[start : start + 32]
        batch = tokenizer(
            [a[2] for a in chunk], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.inference_mode():
            out = model.generate(
                **batch,
                max_new_tokens=12,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :].tolist()
        texts = [
            prefix + tokenizer.decode(ids, skip_special_tokens=True)
            for (_, prefix, _), ids in zip(chunk, new, strict=True)
        ]
        prompts = [tasks[row["prompt_id"]][0] for row, _, _ in chunk]
        refs = [tasks[row["prompt_id"]][1] for row, _, _ in chunk]
        scored = score_batch(spec.rewards, prompts, texts, refs, [{} for _ in chunk])
        passed |= {
            key(row)
            for (row, _, _), s in zip(chunk, scored, strict=True)
            if is_correct(spec.rewards, s)
        }
    return passed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest", type=Path, help="the rewards the hinted answers are checked with")
    p.add_argument("--init", required=True, help="the policy that sampled the iteration")
    p.add_argument("--iteration", type=Path, required=True, help="it-K with samples/sft.jsonl")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    samples = loads_lines((args.iteration / "samples.jsonl").read_text())
    sft = loads_lines((args.iteration / "sft.jsonl").read_text())
    hinted = hinted_kept(samples)
    tasks = {s["prompt_id"]: (s["prompt"], str(s["answer"])) for s in samples}
    verified = verify_without_hint(
        args.manifest, args.init, [r for r in sft if key(r) in hinted], tasks
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in variants(sft, hinted, verified).items():
        atomic_write_jsonl(args.out / f"sft-{name}.jsonl", rows)
        print(f"{name}: {len(rows)} rows")
    print(f"hinted: {len(hinted)} kept, {len(verified)} verified without the hint")


if __name__ == "__main__":
    main()

"""Reward and filter throughput: samples scored (or filtered) per second.

Synthetic but realistic completions, grouped 8 per prompt as the scoring Job sees them
(`score_batch` per prompt, `filters.apply` over all prompts):

- math: math-verify equivalence on "... so the answer is \\boxed{N}." completions;
- code: model-written `add` functions (correct, wrong, raising, syntax error) against three
  assert tests each, every completion in its own sandboxed process (parallel per prompt);
- dedup-embedding: the near-duplicate filter with all-MiniLM-L6-v2 embeddings;
- dedup-shingles, fuzzy, bleu, rouge: the cheap ones, for scale.

    .venv/bin/python bench/bench_rewards.py [--samples 10000] [--only math,code,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.config.spec import RewardSpec
from rft_runtime.filters import FilterResult, Sample, apply
from rft_runtime.rewards import score_batch

GROUP = 8
TESTS = json.dumps(["assert add(1, 2) == 3", "assert add(-4, 4) == 0", "assert add(10, 5) == 15"])
PROGRAMS = [
    "```python\ndef add(a, b):\n    return a + b\n```",
    "Here is my solution:\n```python\ndef add(a, b):\n    total = a\n    total += b\n"
    "    return total\n```",
    "```python\ndef add(a, b):\n    return a - b\n```",
    "```python\ndef add(a, b):\n    raise NotImplementedError\n```",
    "def add(a, b) return a + b",
]
VOCABULARY = (
    "first we add the two numbers then we check the result carefully and the answer follows "
    "since every step is exact so we write it down cat dog river mountain paper triangle "
    "seven eleven prime divide multiply square root angle circle probability coin dice "
    "train speed hour minute distance price discount percent profit garden apple orange"
)
WORDS = VOCABULARY.split()


def math_items(n: int, rng: random.Random) -> tuple[list[str], list[str]]:
    completions, answers = [], []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        got = a + b if rng.random() < 0.6 else a + b + rng.choice([-1, 1, 10])
        completions.append(
            f"We add {a} and {b}: {a} + {b} = {got}, so the answer is \\boxed{{{got}}}."
        )
        answers.append(str(a + b))
    return completions, answers


def text_items(n: int, rng: random.Random) -> list[str]:
    out = []
    for i in range(n):
        if i % GROUP and rng.random() < 0.4:  # a near-copy of the group's first sample
            base = out[i - i % GROUP].split()
            base[rng.randrange(len(base))] = rng.choice(WORDS)
            out.append(" ".join(base))
        else:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40))))
    return out


def timed(label: str, n: int, work: Callable[[], object]) -> dict[str, object]:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    row = {
        "bench": label,
        "samples": n,
        "seconds": round(seconds, 2),
        "per_second": round(n / seconds, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def by_groups(
    specs: list[RewardSpec], prompts: list[str], completions: list[str], answers: list[str]
) -> None:
    for start in range(0, len(completions), GROUP):
        end = start + GROUP
        score_batch(specs, prompts[start:end], completions[start:end], answers[start:end])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch.set_num_threads (0: torch default)"
    )
    parser.add_argument(
        "--only", default="math,code,dedup-embedding,dedup-shingles,fuzzy,bleu,rouge"
    )
    args = parser.parse_args()
    n, chosen = args.samples, set(args.only.split(","))
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    rng = random.Random(0)
    print(
        json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()})
    )
    rows = []
    prompts = [f"prompt {i // GROUP}" for i in range(n)]
    if "math" in chosen:
        completions, answers = math_items(n, rng)
        spec = [RewardSpec(name="answer", type="math")]
        rows.append(timed("math", n, lambda: by_groups(spec, prompts, completions, answers)))
    if "code" in chosen:
        programs = [rng.choice(PROGRAMS) for _ in range(n)]
        spec = [RewardSpec(name="tests", type="code")]
        rows.append(timed("code", n, lambda: by_groups(spec, prompts, programs, [TESTS] * n)))
    texts = text_items(n, rng)
    samples = [Sample(f"p{i // GROUP}", i % GROUP, t, 1.0) for i, t in enumerate(texts)]
    for label, method in (("dedup-embedding", "embedding"), ("dedup-shingles", "shingles")):
        if label in chosen:
            spec_f = FilterSpec(
                maxPerPrompt=GROUP, nearDuplicates={"method": method, "threshold": 0.9}
            )
            if method == "embedding":  # load the model outside the timing
                apply(spec_f, 1.0, samples[:GROUP])
            results: list[FilterResult] = []
            rows.append(
                timed(label, n, lambda s=spec_f, out=results: out.append(apply(s, 1.0, samples)))
            )
            print(json.dumps({label + "_dropped": results[0].dropped}))
    references = text_items(n, random.Random(1))
    for type_ in ("fuzzy", "bleu", "rouge"):
        if type_ in chosen:
            spec = [RewardSpec(name=type_, type=type_)]
            rows.append(timed(type_, n, lambda s=spec: by_groups(s, prompts, texts, references)))
    print("\n| bench | samples | seconds | samples / s |\n| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['bench']} | {row['samples']} | {row['seconds']} | {row['per_second']} |")


if __name__ == "__main__":
    main()

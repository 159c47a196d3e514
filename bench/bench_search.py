"""Sampling strategies at the same token budget, in one run: sample, bestOfN, beam, dvts and
mcts on multi-step additions that plain sampling rarely gets right, with the rule-based
`steps` checker (every `a + b = c` must hold) as the process reward that guides the search.

    .venv/bin/python bench/bench_search.py [--prompts 40] [--budget 256] [--candidates 4]

The task: "What is a + b + c (+ d)?" with numbers in [--low, --high] (default two-digit),
the model shown one worked
example (one addition per line, then `Answer: N`), raw completions (no chat template).
Every strategy gets the same per-prompt token budget (the server's own token counts) and
the same seed; `sample` returns every completion it could afford (its candidates are all
it generated), the others return `--candidates` each. A candidate is correct when its last
number equals the sum (the `numeric` reward, the outcome: never shown to the search).
Reported per strategy: fraction of prompts with at least one correct candidate, correct
candidates (and distinct correct ones) per 1,000 generated tokens, tokens, requests,
seconds. Requests go through the same generator and search code as the scoring Job
(`rft_runtime.score.search`), against `rft_runtime.serve` (vLLM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rft_runtime.config.jobs import Endpoint, PromptFormat
from rft_runtime.config.spec import RewardSpec, SearchSpec
from rft_runtime.rewards import score_batch
from rft_runtime.score.client import EndpointClient
from rft_runtime.score.data import PromptRow
from rft_runtime.score.search import resolve, search
from rft_runtime.score.search.endpoint import endpoint_generator
from rft_runtime.score.search.searchpass import guide

STRATEGIES = ["sample", "bestOfN", "beam", "dvts", "mcts"]
TEMPLATE = (
    "Add the numbers one step at a time, one line per step, then give the answer.\n\n"
    "Question: What is 12 + 35 + 41?\n12 + 35 = 47\n47 + 41 = 88\nAnswer: 88\n\n"
    "Question: What is {prompt}?\n"
)
GUIDE = RewardSpec(name="steps", type="steps", weight=0.0, step_separator="\n")
OUTCOME = RewardSpec(name="answer", type="numeric")


def problems(count: int, low: int = 10, high: int = 99, seed: int = 2026) -> list[PromptRow]:
    """Half three numbers (two steps), half four (three steps), each in [low, high]."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        numbers = [rng.randint(low, high) for _ in range(3 + i % 2)]
        rows.append(PromptRow(f"p{i}", " + ".join(map(str, numbers)), str(sum(numbers))))
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    serve = {"modelPath": model, "host": "127.0.0.1", "port": port, "maxModelLen": 1024}
    (work / "serve.json").write_text(json.dumps(serve))
    log = (work / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "rft_runtime.serve", "--config", str(work / "serve.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200:
                return server, f"http://127.0.0.1:{port}/v1"
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"server exited; see {work / 'serve.log'}")
        time.sleep(1)


async def run_strategy(
    strategy: str, rows: list[PromptRow], base_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "tokenBudget": args.budget,
        "stepSeparator": "\n",
        "seed": args.seed,
        "expansion": args.expansion,
    }
    if strategy == "beam":
        fields["beamWidth"] = args.beam_width
    if strategy == "dvts":
        fields["subtrees"] = args.subtrees
    if strategy == "mcts":
        fields["explorationConstant"] = args.exploration
    params = resolve(
        strategy,
        SearchSpec.model_validate(fields),
        candidates=args.candidates,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
    )
    fmt = PromptFormat(prompt_template=TEMPLATE, use_chat_template=False)
    endpoint = Endpoint(base_url=base_url, model="policy", concurrency=args.concurrency)
    client = EndpointClient(endpoint)
    limit = asyncio.Semaphore(args.concurrency)
    prompts = asyncio.Semaphore(args.concurrency)

    async def one(row: PromptRow) -> dict[str, Any]:
        generate = endpoint_generator(client, fmt, "policy", row.prompt, params, limit)
        async with prompts:
            result = await search(params, row.id, generate, guide(GUIDE, row))
        texts = [c.text for c in result.candidates]
        scored = score_batch([OUTCOME], [row.prompt] * len(texts), texts, [row.answer] * len(texts))
        right = [t for t, s in zip(texts, scored, strict=True) if s.rewards["answer"] >= 1.0]
        return {
            "tokens": result.tokens,
            "requests": result.requests,
            "candidates": len(texts),
            "correct": len(right),
            "distinct": len(set(right)),
        }

    start = time.monotonic()
    try:
        per = await asyncio.gather(*(one(row) for row in rows))
    finally:
        await client.aclose()
    seconds = time.monotonic() - start
    tokens = sum(p["tokens"] for p in per)
    correct = sum(p["correct"] for p in per)
    distinct = sum(p["distinct"] for p in per)
    return {
        "strategy": strategy,
        "prompts_solved": sum(p["correct"] > 0 for p in per) / len(per),
        "correct": correct,
        "distinct_correct": distinct,
        "correct_per_1k_tokens": round(1000 * correct / tokens, 2) if tokens else 0.0,
        "distinct_correct_per_1k_tokens": round(1000 * distinct / tokens, 2) if tokens else 0.0,
        "tokens": tokens,
        "max_tokens_one_prompt": max(p["tokens"] for p in per),
        "candidates_per_prompt": round(sum(p["candidates"] for p in per) / len(per), 2),
        "requests": sum(p["requests"] for p in per),
        "seconds": round(seconds, 1),
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| strategy | prompts with >=1 correct | correct / 1k tokens | distinct correct / 1k "
        "tokens | candidates / prompt | tokens (max one prompt) | requests | seconds |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    lines = [
        f"| {r['strategy']} | {r['prompts_solved']:.3f} | {r['correct_per_1k_tokens']} | "
        f"{r['distinct_correct_per_1k_tokens']} | {r['candidates_per_prompt']} | "
        f"{r['tokens']} ({r['max_tokens_one_prompt']}) | {r['requests']} | {r['seconds']} |"
        for r in results
    ]
    return "\n".join([head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="HF model dir (default: SmolLM2-135M)")
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--budget", type=int, default=256, help="tokens per prompt")
    parser.add_argument("--low", type=int, default=10, help="smallest number")
    parser.add_argument("--high", type=int, default=99, help="largest number")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--expansion", type=int, default=4)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--subtrees", type=int, default=4)
    parser.add_argument("--exploration", type=float, default=1.0)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="search.seed; needs --concurrency 1 on CPU (vLLM's CPU sampler crashes on a "
        "seeded request whose prefill is chunked)",
    )
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--work", help="keep the server's log and config here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    if args.model is None:
        from rft_runtime.bundled_models import prepare

        args.model = str(prepare("smollm2-135m"))
    rows = problems(args.prompts, args.low, args.high)
    with tempfile.TemporaryDirectory(prefix="rft-bench-search-") as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        server, base_url = start_server(args.model, work)
        try:
            results = [
                asyncio.run(run_strategy(s, rows, base_url, args))
                for s in args.strategies.split(",")
            ]
        except Exception:
            log = (work / "serve.log").read_text(errors="replace")
            print(f"server log (last 3000 chars):\n{log[-3000:]}", file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(timeout=120)
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
        "settings": {k: v for k, v in vars(args).items() if k != "model"},
        "results": results,
    }
    print(json.dumps(report, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()

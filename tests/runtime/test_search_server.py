"""The search strategies on the real small model: SmolLM2-135M-Instruct behind
`rft_runtime.serve` (vLLM, CPU), multi-step additions, the `steps` checker as the guide.
Each strategy respects its budget (the server's own token counts), returns the declared
number of candidates and repeats itself under a seed; the scoring Job resumes a killed
search without redoing finished prompts. One server for the module (~90 s)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rft_runtime.config.jobs import Endpoint, PromptFormat
from rft_runtime.config.spec import RewardSpec, SearchSpec
from rft_runtime.score.client import EndpointClient
from rft_runtime.score.data import PromptRow
from rft_runtime.score.search import Ask, Reply, SearchResult, resolve, search
from rft_runtime.score.search.endpoint import endpoint_generator
from rft_runtime.score.search.searchpass import guide

from . import test_score_server as base
from .test_score_server import Server, read_jsonl, run_score

pytestmark = pytest.mark.slow

sampler = base.server  # the same module-scoped fixture: one vLLM server for this module

TEMPLATE = (
    "Add the numbers one step at a time, one line per step, then give the answer.\n\n"
    "Question: What is 12 + 35 + 41?\n12 + 35 = 47\n47 + 41 = 88\nAnswer: 88\n\n"
    "Question: What is {prompt}?\n"
)
FORMAT = PromptFormat(prompt_template=TEMPLATE, use_chat_template=False)
GUIDE = RewardSpec(name="steps", type="steps", weight=0.0, step_separator="\n")
BUDGET = 160


def rows(count: int, seed: int = 5) -> list[PromptRow]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        a, b, c = (rng.randint(10, 99) for _ in range(3))
        out.append(PromptRow(f"q{i}", f"{a} + {b} + {c}", str(a + b + c)))
    return out


async def searched(
    server: Server, strategy: str, row: PromptRow, seed: int = 11
) -> tuple[SearchResult, list[tuple[Ask, Reply]]]:
    """One search against the server, every request and reply recorded."""
    fields: dict[str, Any] = {"stepSeparator": "\n", "seed": seed, "tokenBudget": BUDGET}
    fields["expansion"] = 2
    if strategy == "dvts":
        fields["subtrees"] = 2  # 80 tokens each: room for a few steps
    spec = SearchSpec.model_validate(fields)
    params = resolve(strategy, spec, candidates=2, max_tokens=24, temperature=1.0)
    client = EndpointClient(Endpoint(base_url=server.base_url, model="policy", concurrency=1))
    calls: list[tuple[Ask, Reply]] = []
    try:
        inner = endpoint_generator(
            client, FORMAT, "policy", row.prompt, params, asyncio.Semaphore(1)
        )

        async def generate(ask: Ask) -> Reply:
            reply = await inner(ask)
            calls.append((ask, reply))
            return reply

        return await search(params, row.id, generate, guide(GUIDE, row)), calls
    finally:
        await client.aclose()


@pytest.mark.parametrize("strategy", ["bestOfN", "beam", "dvts", "mcts"])
def test_strategy_on_the_real_model(sampler: Server, strategy: str) -> None:
    for row in rows(1):
        result, calls = asyncio.run(searched(sampler, strategy, row))
        # the budget, in the server's own token counts
        assert result.tokens == sum(reply.tokens for _, reply in calls) <= BUDGET
        assert result.completions == sum(len(reply.texts) for _, reply in calls)
        assert result.requests == len(calls) > 0
        # the declared number of candidates, each a solution the server wrote
        assert len(result.candidates) == 2
        for candidate in result.candidates:
            assert candidate.text and candidate.finish in {"stop", "length", "budget"}
            assert 0.0 <= candidate.score <= 1.0
        if strategy != "bestOfN":  # partial solutions were continued step by step
            assert any(ask.prefix and ask.stop == ("\n",) for ask, _ in calls)
        # the same seed repeats the search exactly (one request in flight); another does not
        again, _ = asyncio.run(searched(sampler, strategy, row))
        assert again == result
        other, _ = asyncio.run(searched(sampler, strategy, row, seed=12))
        assert [c.text for c in other.candidates] != [c.text for c in result.candidates]


def test_scoring_job_search_resumes_after_kill(sampler: Server, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    items = rows(6, seed=9)
    prompts.write_text(
        "".join(
            json.dumps({"id": r.id, "prompt": r.prompt, "answer": r.answer}) + "\n" for r in items
        )
    )
    out = tmp_path / "it-0"
    config: dict[str, Any] = {
        "run": "search",
        "iteration": 0,
        "outputDir": str(out),
        "policy": {"baseUrl": sampler.base_url, "model": "policy", "concurrency": 1},
        "promptFormat": FORMAT.model_dump(by_alias=True),
        "train": {"path": str(prompts), "idField": "id"},
        "sampling": {"n": 2, "temperature": 1.0, "maxTokens": 24, "strategy": "beam"},
        "search": {"prm": "steps", "stepSeparator": "\n", "seed": 3, "tokenBudget": BUDGET},
        "rewards": [
            {"name": "answer", "type": "numeric", "weight": 1.0},
            GUIDE.to_wire(),
        ],
        "filter": {"maxPerPrompt": 2},
        "minReward": 1.0,
    }
    progress = out / "progress" / "train-beam.jsonl"
    first = run_score(config, tmp_path, start_new_session=True)
    deadline = time.monotonic() + 300
    while not progress.exists() or progress.read_text().count("\n") < 2:
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = progress.read_bytes()
    recorded = before.count(b"\n")
    assert 2 <= recorded < len(items), "the job must be killed halfway"

    second = run_score(config, tmp_path)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-3000:]
    assert f"[beam] {recorded}/{len(items)} prompts" in stderr  # resumed, not restarted
    after = progress.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])
    ids = [json.loads(line)["id"] for line in after.decode().splitlines()]
    assert sorted(ids) == sorted(r.id for r in items)  # each prompt searched exactly once

    samples = read_jsonl(out / "samples.jsonl")
    assert Counter(s["prompt_id"] for s in samples) == {r.id: 2 for r in items}
    for sample in samples:
        assert sample["strategy"] == "beam" and sample["path"]
        assert set(sample["rewards"]) == {"answer", "steps"}
        assert sample["guide"] == pytest.approx(sample["rewards"]["steps"])
    metrics = json.loads((out / "metrics.json").read_text())["train"]
    assert metrics["strategy"] == "beam"
    assert 0 < metrics["tokens_this_run"] < metrics["tokens"] <= BUDGET * len(items)

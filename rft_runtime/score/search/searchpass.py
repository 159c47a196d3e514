"""The training pass with a search strategy: like `passes.run_pass` (same progress log,
same per-prompt records, so resume, filter and outputs are unchanged), but each prompt's
completions come from a search and carry `strategy`, `path` (the tree path that produced
them) and `guide` (the search reward's value) besides the usual rewards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from ...config.jobs import PromptFormat, SamplingParams
from ...config.spec import RewardSpec, SearchSpec
from ...rewards import score_batch
from ..client import EndpointClient, Generation, RequestRejected
from ..data import PromptRow
from ..passes import PassStats, Request, build_record
from ..progress_bar import Progress
from ..progress_log import ProgressLog
from .endpoint import endpoint_generator
from .params import Params, resolve
from .strategies import Score, SearchResult, search


class GuideMissing(ValueError):
    """sampler.search.prm names no reward of the job."""


def guide_spec(specs: Sequence[RewardSpec], name: str | None) -> RewardSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise GuideMissing(
        f"sampler.search.prm {name!r} is not a reward of this run "
        f"({', '.join(s.name for s in specs)}); name one of them"
    )


def guide(spec: RewardSpec, row: PromptRow) -> Score:
    """The search's value of partial solutions: `spec`'s reward (in a thread: model-based
    rewards compute for a while)."""

    async def score(texts: list[str]) -> list[float]:
        count = len(texts)
        scored = await asyncio.to_thread(
            score_batch,
            [spec],
            [row.prompt] * count,
            texts,
            [row.answer] * count,
            [row.columns] * count,
        )
        return [s.rewards[spec.name] for s in scored]

    return score


def search_record(
    row: PromptRow, result: SearchResult, specs: Sequence[RewardSpec], strategy: str
) -> dict[str, Any]:
    """The progress record of one searched prompt (the candidates scored by every reward)."""
    generation = Generation(
        [c.text for c in result.candidates],
        [c.finish for c in result.candidates],
        result.tokens,
    )
    record = build_record(row, generation, specs, None)
    for completion, candidate in zip(record["completions"], result.candidates, strict=True):
        completion["strategy"] = strategy
        completion["path"] = list(candidate.path)
        completion["guide"] = candidate.score
        if candidate.rollout:
            completion["rollout"] = True
    record["search"] = {
        "strategy": strategy,
        "completions": result.completions,
        "requests": result.requests,
        "nodes": result.nodes,
    }
    return record


def params_for(sampling: SamplingParams, spec: SearchSpec | None) -> Params:
    return resolve(
        sampling.strategy,
        spec,
        candidates=sampling.n,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
    )


async def run_search_pass(
    client: EndpointClient,
    rows: Sequence[PromptRow],
    log: ProgressLog,
    fmt: PromptFormat,
    request: Request,
    specs: Sequence[RewardSpec],
    label: str,
    *,
    params: Params,
    guide_name: str | None,
) -> PassStats:
    """Search every row missing from `log`; `request.model` is the model asked (whatever
    the job's endpoint names), `params` the search."""
    reward = guide_spec(specs, guide_name)
    pending = [row for row in rows if row.id not in log]
    stats = PassStats()
    if not pending:
        return stats
    stats.waited = await client.wait_ready()
    progress = Progress(label, total=len(rows), done=len(rows) - len(pending))
    prompts = asyncio.Semaphore(client.endpoint.concurrency)
    requests = asyncio.Semaphore(client.endpoint.concurrency)
    start = time.monotonic()

    async def one(row: PromptRow) -> None:
        generate = endpoint_generator(client, fmt, request.model, row.prompt, params, requests)
        async with prompts:
            try:
                result = await search(params, row.id, generate, guide(reward, row))
            except RequestRejected as exc:  # this prompt only (e.g. too long): record, go on
                log.append(build_record(row, None, specs, str(exc)))
                stats.sent += 1
                progress.update(0)
                return
        log.append(search_record(row, result, specs, params.strategy))
        stats.sent += 1
        stats.tokens += result.tokens
        progress.update(result.tokens)

    try:
        async with asyncio.TaskGroup() as group:
            for row in pending:
                group.create_task(one(row))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    finally:
        progress.close()
        stats.seconds = time.monotonic() - start
    return stats

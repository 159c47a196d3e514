"""GRPO's batches: groups of completions from the sampler, scored by the run's rewards.

The same pieces as the scoring Job (`score.client`, `score.formatting`, `passes.build_record`
and so the same reward registry and sandbox), on an event loop of its own in a background
thread: the training loop submits a batch and collects it when it needs it, so with
`async` the next batch is generated while the current step trains.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..config.jobs import GrpoJob
from ..score.client import EndpointClient, Generation, RequestRejected
from ..score.data import PromptRow
from ..score.formatting import request_body
from ..score.passes import build_record


@dataclass
class Group:
    """One prompt's completions and their total rewards (`group_size` of each)."""

    row: PromptRow
    texts: list[str]
    finish_reasons: list[str | None]
    rewards: list[float]
    correct: list[bool]
    error: str | None = None  # the sampler rejected the prompt: no signal from this group
    # async: what the sampler sampled, token by token, and each token's log-probability
    # under the sampling policy (the importance ratio's denominator)
    tokens: list[tuple[list[int], list[float]]] | None = None


@dataclass
class Batch:
    """What one step trains on, and the policy that sampled it."""

    step: int
    policy_step: int  # policy_step n: the weights after n updates of this iteration
    groups: list[Group] = field(default_factory=list)
    tokens: int = 0  # completion tokens generated
    generation_seconds: float = 0.0  # from the first request to the last scored group
    scoring_seconds: float = 0.0  # summed time in the reward functions


def group_of(
    row: PromptRow, record: dict[str, object], size: int, generation: Generation | None = None
) -> Group:
    """A scored progress record as a group; a rejected or short answer carries no signal."""
    completions = record.get("completions")
    items = completions if isinstance(completions, list) else []
    error = record.get("error")
    if len(items) != size:
        why = str(error) if error else f"{len(items)} of {size} completions came back"
        return Group(row, [""] * size, ["error"] * size, [0.0] * size, [False] * size, why)
    tokens = generation.extra.get("tokens") if generation is not None else None
    return Group(
        row,
        [str(c["text"]) for c in items],
        [c.get("finish_reason") for c in items],
        [float(c["reward"]) for c in items],
        [bool(c.get("correct")) for c in items],
        tokens=tokens if isinstance(tokens, list) and len(tokens) == size else None,
    )


class GroupSampler:
    """Batches of groups from the sampler, produced on a background event loop."""

    def __init__(self, job: GrpoJob, logprobs: bool = False) -> None:
        self.job = job
        self.logprobs = logprobs
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="grpo-sampling")
        self.thread.daemon = True
        self.thread.start()
        self.client: EndpointClient | None = None
        self.ready = False

    def submit(self, rows: Sequence[PromptRow], step: int, policy_step: int) -> Future[Batch]:
        """Start sampling and scoring `rows`; the future holds the batch (or the error)."""
        return asyncio.run_coroutine_threadsafe(
            self._batch(list(rows), step, policy_step), self.loop
        )

    def close(self) -> None:
        if self.client is not None:
            asyncio.run_coroutine_threadsafe(self.client.aclose(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    async def _batch(self, rows: list[PromptRow], step: int, policy_step: int) -> Batch:
        job = self.job
        if self.client is None:
            self.client = EndpointClient(job.policy)
        if not self.ready:
            await self.client.wait_ready()
            self.ready = True
        client = self.client
        sampling = job.sampling
        batch = Batch(step, policy_step)
        limit = asyncio.Semaphore(job.policy.concurrency)
        start = time.monotonic()

        async def one(row: PromptRow) -> Group:
            path, body = request_body(
                job.prompt_format,
                job.policy.model,
                row.prompt,
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
            )
            if self.logprobs:  # the sampled tokens and their log-probabilities too
                body["logprobs"] = True if path.startswith("chat") else 0
                body["return_tokens_as_token_ids"] = True
            generation: Generation | None
            error = None
            async with limit:
                try:
                    generation = await client.generate(path, body)
                except RequestRejected as exc:  # this prompt only (e.g. too long)
                    generation, error = None, str(exc)
            scored = time.monotonic()
            record = await asyncio.to_thread(build_record, row, generation, job.rewards, error)
            batch.scoring_seconds += time.monotonic() - scored
            batch.tokens += generation.completion_tokens if generation else 0
            return group_of(row, record, sampling.n, generation)

        try:
            async with asyncio.TaskGroup() as tasks:
                running = [tasks.create_task(one(row)) for row in rows]
        except ExceptionGroup as failures:  # the first failure is the cause
            raise failures.exceptions[0] from None
        batch.groups = [task.result() for task in running]
        batch.generation_seconds = time.monotonic() - start
        return batch

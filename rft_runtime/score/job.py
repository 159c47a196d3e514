"""The scoring Job: evaluate the policy, sample the training prompts, reward, filter, write.

Restart-safe: every pass appends per-prompt records to `progress/*.jsonl`; a restarted
process sends only the prompts missing there, and every final output is rebuilt from those
records, so each prompt is scored exactly once however often the pod restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import filters
from ..config.jobs import Endpoint, PromptFormat, PromptSource, ScoreJobConfig, ScoreSummary
from ..config.keys import (
    EVALUATION_SECONDS,
    POLICY_LOAD_SECONDS,
    SAMPLING_SECONDS,
    TOTAL_SECONDS,
    primary_score,
    scores_of,
)
from ..config.paths import IterationPaths
from ..config.spec import RewardSpec
from ..datacheck import InvalidData, check_files, checks_for
from ..files import atomic_write_json
from ..jsonl import atomic_write_jsonl
from ..policy_sync import wait_until_served
from . import adaptive, rounds
from .client import EndpointClient
from .data import PromptRow, load_prompts
from .outputs import (
    dpo_rows,
    eval_metrics,
    eval_rows,
    mean_prompt_pass_rate,
    sample_rows,
    sft_rows,
    to_samples,
    train_metrics,
)
from .passes import PassStats, Request, run_pass
from .progress_log import ProgressLog
from .search.searchpass import params_for, run_search_pass

PassRunner = Callable[
    [EndpointClient, list[PromptRow], ProgressLog, PromptFormat, Request, list[RewardSpec], str],
    Awaitable[PassStats],
]


def search_runner(config: ScoreJobConfig) -> PassRunner:
    """`run_pass`'s shape, searching with the job's strategy instead of sampling."""
    params = params_for(config.sampling, config.search)
    guide = config.search.prm if config.search else None

    async def runner(*args: Any) -> PassStats:
        return await run_search_pass(*args, params=params, guide_name=guide)

    return runner


def _rate(stats: PassStats) -> float | None:
    return round(stats.tokens / stats.seconds, 2) if stats.sent and stats.seconds > 0 else None


async def _pass(
    config: ScoreJobConfig,
    endpoint: Endpoint,
    source: PromptSource | list[PromptRow],
    request: Request,
    progress_file: Path,
    label: str,
    runner: PassRunner = run_pass,
) -> tuple[list[dict[str, Any]], PassStats]:
    rows = load_prompts(source) if isinstance(source, PromptSource) else source
    client = EndpointClient(endpoint)
    try:
        with ProgressLog(progress_file) as log:
            stats = await runner(
                client, rows, log, config.prompt_format, request, config.rewards, label
            )
            return [log.records[row.id] for row in rows], stats
    finally:
        await client.aclose()


async def evaluate(config: ScoreJobConfig, out: IterationPaths, metrics: dict[str, Any]) -> float:
    assert config.evaluation is not None
    params = config.evaluation
    request = Request(
        config.policy.model, params.samples_per_prompt, params.temperature, 1.0, params.max_tokens
    )
    endpoint = config.policy
    if params.concurrency is not None:
        endpoint = endpoint.model_copy(update={"concurrency": params.concurrency})
    start = time.monotonic()
    for eval_set in params.sets:
        records, stats = await _pass(
            config,
            endpoint,
            eval_set.source,
            request,
            Path(out.progress(f"eval-{eval_set.name}")),
            f"eval {eval_set.name}",
        )
        atomic_write_jsonl(out.eval_set(eval_set.name), eval_rows(records))
        metrics[eval_set.name] = {
            **eval_metrics(records, params.pass_at_k),
            "seconds": round(stats.seconds, 3),
            "tokens_this_run": stats.tokens,
            "tokens_per_second": _rate(stats),
        }
    return time.monotonic() - start


def _round_endpoint(endpoint: Endpoint, first_n: int, n: int) -> Endpoint:
    """A round asking n < first_n samples per prompt keeps as many sequences in flight as
    the first round (concurrency x first_n), so the server batches as well."""
    concurrency = max(endpoint.concurrency, endpoint.concurrency * first_n // max(1, n))
    return endpoint.model_copy(update={"concurrency": concurrency})


async def _own_samples(
    config: ScoreJobConfig,
    endpoint: Endpoint,
    request: Request,
    rows: list[PromptRow],
    out: IterationPaths,
) -> tuple[list[dict[str, Any]], PassStats, dict[str, Any]]:
    """The policy's own (unhinted) samples of every prompt: one pass, a search pass, or
    two rounds with `sampler.adaptive` (the second for the prompts not yet settled)."""
    params = config.sampling
    if params.strategy != "sample":  # same endpoint, model name and records, other progress file
        records, stats = await _pass(
            config,
            endpoint,
            rows,
            request,
            Path(out.progress(f"train-{params.strategy}")),
            params.strategy,
            search_runner(config),
        )
        return records, stats, {}
    if not params.adaptive:
        records, stats = await _pass(
            config, endpoint, rows, request, Path(out.progress("train")), "sample"
        )
        return records, stats, {}
    first_n = adaptive.first_round(params.n)
    first, stats = await _pass(
        config,
        _round_endpoint(endpoint, params.n, first_n),
        rows,
        replace(request, n=first_n),
        Path(out.progress("train")),
        "sample (round 1)",
    )
    todo = adaptive.unsettled(rows, first, config.filter, config.min_reward)
    rest, rest_stats = await _pass(
        config,
        _round_endpoint(endpoint, params.n, params.n - first_n),
        todo,
        replace(request, n=params.n - first_n),
        Path(out.progress(f"train-{adaptive.ROUND_REST}")),
        "sample (round 2)",
    )
    records = rounds.merge(first, rest, adaptive.ROUND_REST)
    return records, stats + rest_stats, rounds.round_metrics(first, rest, adaptive.ROUND_REST)


async def sample(config: ScoreJobConfig, out: IterationPaths, metrics: dict[str, Any]) -> float:
    assert config.train is not None
    endpoint = config.teacher or config.policy
    params = config.sampling
    request = Request(endpoint.model, params.n, params.temperature, params.top_p, params.max_tokens)
    start = time.monotonic()
    rows = load_prompts(config.train)
    own, stats, extra = await _own_samples(config, endpoint, request, rows, out)
    records = own
    hint = params.hint_template or ""
    extra_rounds = (  # (round, samples per prompt, progress label, the prompt row it asks)
        (rounds.ROUND_MORE, params.unsolved_extra_samples, "sample unsolved", lambda r: r),
        (
            rounds.ROUND_HINT,
            params.hint_samples if hint else 0,
            "rationalize",
            lambda r: rounds.hinted(r, hint),
        ),
    )
    for name, n, label, ask in extra_rounds:
        todo = rounds.unsolved(rows, records) if n else []
        if not todo:
            continue
        added, added_stats = await _pass(
            config,
            _round_endpoint(endpoint, params.n, n),
            [ask(row) for row in todo],
            replace(request, n=n),
            Path(out.progress(f"train-{name}")),
            label,
        )
        records = rounds.merge(records, added, name)
        stats = stats + added_stats
        extra.update(rounds.round_metrics(own, added, name))
    result = filters.apply(config.filter, config.min_reward, to_samples(records))
    atomic_write_jsonl(out.samples, sample_rows(records, result))
    atomic_write_jsonl(out.sft_dataset, sft_rows(records, result, config.prompt_format))
    if config.filter.rejected == "lowest":
        atomic_write_jsonl(out.dpo_dataset, dpo_rows(records, result, config.prompt_format))
    metrics.update(train_metrics(records, result, config.min_reward))
    # the policy's own pass rate: its unhinted samples (later rounds ask unsolved prompts only)
    metrics["pass_rate"] = mean_prompt_pass_rate(to_samples(own), config.min_reward)
    metrics.update(extra)
    metrics.update(
        seconds=round(stats.seconds, 3),
        endpoint_wait_seconds=round(stats.waited, 3),
        tokens_this_run=stats.tokens,
        tokens_per_second=_rate(stats),
        source="teacher" if config.teacher else "policy",
        strategy=params.strategy,
    )
    return time.monotonic() - start


def summary_scores(
    config: ScoreJobConfig, metrics_by_set: dict[str, Any]
) -> tuple[dict[str, float], float | None]:
    """'<set>/pass@<k>' for every set and k, and the primary score: the first set's first k
    (the operator's stop rules and best checkpoint use it)."""
    scores = scores_of(metrics_by_set)
    ev = config.evaluation
    primary = primary_score(scores, [s.name for s in ev.sets], ev.pass_at_k) if ev else None
    return scores, primary


async def run_job(config: ScoreJobConfig) -> ScoreSummary:
    """Both passes, then metrics.json; returns the termination summary."""
    problems = check_files(checks_for(config))  # before any request: bad data fails fast
    if problems:
        raise InvalidData(problems)
    out = IterationPaths(config.output_dir)
    Path(out.dir).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    seconds: dict[str, float] = {}
    sync = config.policy_sync
    if sync is not None:  # the long-lived sampler loads this iteration's policy first
        seconds[POLICY_LOAD_SECONDS] = round(
            await asyncio.to_thread(
                wait_until_served,
                sync.policy_file,
                sync.loaded_dir,
                sync.policy_path,
                sync.replicas,
                sync.timeout_seconds,
            ),
            3,
        )
    eval_metrics_by_set: dict[str, Any] = {}
    train: dict[str, Any] = {}
    if config.evaluation is not None:
        seconds[EVALUATION_SECONDS] = round(await evaluate(config, out, eval_metrics_by_set), 3)
    if config.train is not None:
        seconds[SAMPLING_SECONDS] = round(await sample(config, out, train), 3)
    total = round(time.monotonic() - start, 3)
    eval_scores, eval_score = summary_scores(config, eval_metrics_by_set)
    atomic_write_json(
        out.metrics,
        {
            "run": config.run,
            "iteration": config.iteration,
            "eval": eval_metrics_by_set,
            "eval_score": eval_score,
            "train": train or None,
            "seconds": {**seconds, TOTAL_SECONDS: total},
        },
    )
    return ScoreSummary(
        iteration=config.iteration,
        eval_scores=eval_scores,
        eval_score=eval_score,
        samples=train.get("samples", 0),
        accepted=train.get("kept", 0),
        train_pass_rate=train.get("pass_rate"),
        mean_reward=train.get("mean_reward"),
        seconds=seconds,
    )

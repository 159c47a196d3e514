"""Pure builders of the job configs for iteration k (the contract of rft_runtime.config.jobs).

Naming: "policy k" is the model after k trainings (policy 0 = the base model). The scoring
Job of index k evaluates policy k and samples the training data of training k, which
produces policy k+1. The scoring Job of index `iterations.max` only evaluates (final pass).
"""

from __future__ import annotations

from rft_runtime.config.env import TEACHER_API_KEY_ENV
from rft_runtime.config.jobs import (
    POLICY_MODEL_NAME,
    Endpoint,
    EvalParams,
    EvalSet,
    GrpoJob,
    PolicySync,
    PromptFormat,
    PromptSource,
    SamplingParams,
    ScoreJobConfig,
    ServeConfig,
    TrainJobConfig,
)
from rft_runtime.config.paths import RunPaths
from rft_runtime.config.spec import GrpoSpec, LoraSpec, RewardSpec

from .api import RFTRunSpec, RFTRunStatus
from .layout import Layout
from .names import sampler_name, shared_sampler_name
from .schedule import does_evaluate, does_sample, min_reward, needs_policy_server, temperature


def sampler_of(spec: RFTRunSpec, run: str, index: int) -> str:
    """The sampler serving policy `index`: the run's long-lived one, or one per iteration."""
    return shared_sampler_name(run) if spec.sampler.keep_alive else sampler_name(run, index)


def policy_uri(spec: RFTRunSpec, status: RFTRunStatus, index: int, layout: Layout) -> str:
    """Weights of policy k: the base model, or what training k-1 produced (status records it;
    an iteration that kept no samples carries the previous policy over)."""
    if index == 0:
        return spec.model.uri
    for item in status.iterations or []:
        if item.index == index - 1 and item.checkpoint:
            return item.checkpoint
    return layout.uri_of(layout.iteration(index - 1).checkpoint)


def policy_path(spec: RFTRunSpec, status: RFTRunStatus, index: int, layout: Layout) -> str:
    return layout.resolve(policy_uri(spec, status, index, layout))


def serve_config(spec: RFTRunSpec, status: RFTRunStatus, index: int, layout: Layout) -> ServeConfig:
    return ServeConfig(
        model_path=policy_path(spec, status, index, layout),
        served_model_name=POLICY_MODEL_NAME,
        max_model_len=spec.model.max_model_len,
        dtype=spec.model.dtype,
        tensor_parallel_size=spec.sampler.tensor_parallel_size,
        gpu_memory_utilization=spec.sampler.gpu_memory_utilization,
        device="cuda" if spec.sampler.gpus_per_replica > 0 else "cpu",
        policy_file=RunPaths(layout.run_dir).sampler_policy if spec.sampler.keep_alive else None,
        loaded_dir=RunPaths(layout.run_dir).sampler_loaded if spec.sampler.keep_alive else None,
    )


def policy_sync(
    spec: RFTRunSpec, status: RFTRunStatus, index: int, layout: Layout
) -> PolicySync | None:
    """What scoring Job k asks of the long-lived sampler: serve policy k."""
    if not spec.sampler.keep_alive or not needs_policy_server(spec, index):
        return None
    paths = RunPaths(layout.run_dir)
    return PolicySync(
        policy_file=paths.sampler_policy,
        loaded_dir=paths.sampler_loaded,
        policy_path=policy_path(spec, status, index, layout),
        replicas=spec.sampler.replicas,
    )


def policy_endpoint(spec: RFTRunSpec, run: str, index: int, layout: Layout) -> Endpoint:
    """The sampler serving policy `index`, as the scoring and GRPO training Jobs reach it."""
    return Endpoint(
        base_url=layout.sampler_url(sampler_of(spec, run, index)),
        model=POLICY_MODEL_NAME,
        concurrency=spec.sampler.concurrency,
        timeout_seconds=spec.sampler.request_timeout_seconds,
    )


def train_prompts(spec: RFTRunSpec, layout: Layout, index: int) -> PromptSource:
    """Iteration `index`'s training prompts (its window, with `data.promptsPerIteration`)."""
    data = spec.data
    return PromptSource(
        path=layout.resolve(data.train),
        prompt_field=data.prompt_field,
        answer_field=data.answer_field,
        id_field=data.id_field,
        max_rows=data.max_prompts,
        max_row_bytes=data.max_row_bytes,
        per_iteration=data.prompts_per_iteration,
        iteration=index,
    )


def prompt_format(spec: RFTRunSpec) -> PromptFormat:
    return PromptFormat(
        system_prompt=spec.data.system_prompt,
        prompt_template=spec.data.prompt_template,
        use_chat_template=spec.model.use_chat_template,
    )


def job_rewards(spec: RFTRunSpec, layout: Layout) -> list[RewardSpec]:
    """The rewards with their model URIs resolved to paths inside the pod."""
    return [
        r.model_copy(update={"model": "file://" + layout.resolve(r.model)}) if r.model else r
        for r in spec.rewards
    ]


def eval_concurrency(concurrency: int, sampled_per_prompt: int, evaluated_per_prompt: int) -> int:
    """Requests in flight while evaluating: as many sequences as sampling keeps in flight
    (concurrency x samplesPerPrompt), so a greedy pass batches as well on the same server
    and load. Never fewer than `concurrency`."""
    sequences = concurrency * sampled_per_prompt
    return max(concurrency, sequences // max(1, evaluated_per_prompt))


def score_config(
    spec: RFTRunSpec,
    run: str,
    index: int,
    layout: Layout,
    status: RFTRunStatus | None = None,
) -> ScoreJobConfig:
    sampler = spec.sampler
    policy = policy_endpoint(spec, run, index, layout)
    teacher = None
    if sampler.teacher is not None and does_sample(spec, index):
        teacher = Endpoint(
            base_url=sampler.teacher.url,
            model=sampler.teacher.model or "",
            api_key_env=TEACHER_API_KEY_ENV if sampler.teacher.api_key_secret_ref else None,
            concurrency=sampler.concurrency,
            timeout_seconds=sampler.request_timeout_seconds,
        )
    data = spec.data
    evaluation = None
    if does_evaluate(spec, index) and spec.evaluation is not None:
        ev = spec.evaluation
        evaluation = EvalParams(
            sets=[
                EvalSet(
                    name=s.name,
                    source=PromptSource(
                        path=layout.resolve(s.uri),
                        prompt_field=s.prompt_field or data.prompt_field,
                        answer_field=s.answer_field or data.answer_field,
                        id_field=data.id_field,
                        max_rows=s.max_samples,
                        max_row_bytes=data.max_row_bytes,
                    ),
                )
                for s in ev.sets
            ],
            pass_at_k=list(ev.pass_at_k),
            samples_per_prompt=ev.samples_per_prompt,
            temperature=ev.temperature,
            max_tokens=sampler.max_tokens,
            concurrency=eval_concurrency(
                sampler.concurrency, sampler.samples_per_prompt, ev.samples_per_prompt
            ),
        )
    train = train_prompts(spec, layout, index) if does_sample(spec, index) else None
    return ScoreJobConfig(
        run=run,
        iteration=index,
        output_dir=layout.iteration(index).dir,
        policy=policy,
        policy_sync=policy_sync(spec, status or RFTRunStatus(), index, layout),
        teacher=teacher,
        prompt_format=prompt_format(spec),
        evaluation=evaluation,
        train=train,
        sampling=SamplingParams(
            n=sampler.samples_per_prompt,
            temperature=temperature(spec, index),
            adaptive=sampler.adaptive,
            unsolved_extra_samples=sampler.unsolved_extra_samples,
            hint_template=sampler.rationalize.template if sampler.rationalize else None,
            hint_samples=sampler.rationalize.samples_per_prompt if sampler.rationalize else 4,
            top_p=sampler.top_p,
            max_tokens=sampler.max_tokens,
            strategy=sampler.strategy,
        ),
        search=sampler.search,
        rewards=job_rewards(spec, layout),
        filter=spec.filter,
        min_reward=min_reward(spec, index),
    )


def train_config(
    spec: RFTRunSpec, status: RFTRunStatus, run: str, index: int, layout: Layout
) -> TrainJobConfig:
    training = spec.training
    base = layout.resolve(spec.model.uri)
    init = base if training.init_from == "base" else policy_path(spec, status, index, layout)
    paths = layout.iteration(index)
    resume = None
    if training.resume_optimizer and index > 0:
        resume = layout.iteration(index - 1).train_state
    method = training.method
    return TrainJobConfig(
        run=run,
        iteration=index,
        method=method,
        mode=training.mode,
        lora=training.lora or LoraSpec(),
        dataset_path=None if method == "grpo" else paths.dataset(method),
        grpo=grpo_job(spec, run, index, layout, init) if method == "grpo" else None,
        init_model_path=init,
        reference_model_path=init if method in ("dpo", "grpo") else None,
        resume_optimizer_from=resume,
        output_dir=paths.dir,
        epochs=training.epochs,
        learning_rate=training.learning_rate,
        lr_schedule=training.lr_schedule or ("constant" if method == "grpo" else "linear"),
        batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_seq_len=training.max_seq_len,
        beta=training.beta,
        checkpoint_every_steps=training.checkpoint_every_steps,
        precision=training.precision,
        deepspeed=training.deepspeed,
        nodes=training.nodes,
        gpus_per_node=training.gpus_per_node,
    )


def grpo_job(spec: RFTRunSpec, run: str, index: int, layout: Layout, init: str) -> GrpoJob:
    """GRPO training Job k: the long-lived sampler first serves the weights it starts from
    (`init`: policy k, or the base model with initFrom base), then each policy it publishes."""
    params = spec.training.grpo or GrpoSpec()
    sampler = spec.sampler
    paths = RunPaths(layout.run_dir)
    return GrpoJob(
        params=params,
        policy=policy_endpoint(spec, run, index, layout),
        policy_sync=PolicySync(
            policy_file=paths.sampler_policy,
            loaded_dir=paths.sampler_loaded,
            policy_path=init,
            replicas=sampler.replicas,
        ),
        prompts=train_prompts(spec, layout, index),
        prompt_format=prompt_format(spec),
        sampling=SamplingParams(
            n=params.group_size,
            temperature=temperature(spec, index),
            top_p=sampler.top_p,
            max_tokens=params.max_completion_tokens or sampler.max_tokens,
        ),
        rewards=job_rewards(spec, layout),
        step_offset=index * params.steps_per_iteration,
    )

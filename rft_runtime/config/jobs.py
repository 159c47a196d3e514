"""Job configs: the contract between the operator (or local executor) and the jobs.

The operator writes one of these as JSON into each pod (`--config FILE`); the job reads it
with `load_config`. All paths are local to the process (inside the pod: under the mounted
run storage). Each job answers with a short summary on the termination log
(`termination.py`); the paths, keys and environment names both sides share are in
`paths.py`, `keys.py` and `env.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from .base import ApiModel
from .filter_spec import FilterSpec
from .paths import SAMPLER_PORT
from .spec import DeepSpeedSpec, GrpoSpec, LoraSpec, RewardSpec, SearchSpec, SearchStrategy

POLICY_MODEL_NAME = "policy"  # the name the sampler serves the policy under


class ServeConfig(ApiModel):
    """The sampler: vLLM's OpenAI-compatible server on one model directory."""

    model_path: str = Field(description="HF model directory (base model or a merged checkpoint).")
    served_model_name: str = Field(POLICY_MODEL_NAME, description="Name clients put in `model`.")
    host: str = "0.0.0.0"
    port: int = SAMPLER_PORT
    max_model_len: int = 2048
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    device: Literal["cpu", "cuda"] = "cpu"
    policy_file: str | None = Field(
        None,
        description="Long-lived sampler: the JSON file naming the policy to serve. Watched; a "
        "new policy's weights are loaded in place (no restart), and a restarted sampler starts "
        "on it. None: serve model_path until the pod ends.",
    )
    loaded_dir: str | None = Field(
        None, description="Where each sampler pod records the policy it has loaded."
    )


class PolicySync(ApiModel):
    """How a scoring Job makes the long-lived sampler serve the policy it must evaluate."""

    policy_file: str = Field(description="The sampler's policy file (ServeConfig.policy_file).")
    loaded_dir: str = Field(description="ServeConfig.loaded_dir.")
    policy_path: str = Field(description="The model directory of this iteration's policy.")
    replicas: int = Field(1, ge=1, description="Sampler pods that must have loaded it.")
    timeout_seconds: float = Field(900.0, description="How long to wait for them.")


class Endpoint(ApiModel):
    """An OpenAI-compatible endpoint (the sampler Service, or a teacher)."""

    base_url: str = Field(description="e.g. http://run-it0-sampler:8000/v1")
    model: str = Field(description="Model name the endpoint serves.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (filled from a Secret)."
    )
    concurrency: int = 16
    timeout_seconds: float = 300.0
    max_retries: int = 5
    startup_wait_seconds: float = Field(
        600.0, description="How long to wait for the endpoint to answer before failing."
    )


class PromptSource(ApiModel):
    """A prompt file (JSONL, Parquet or a `datasets` directory) and how to read it."""

    path: str
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    id_field: str | None = None
    max_rows: int | None = None
    max_row_bytes: int | None = Field(None, description="Longer lines are an InvalidData error.")
    per_iteration: int | None = Field(
        None, description="Use this many rows, the window of iteration `iteration` (all if unset)."
    )
    iteration: int = Field(0, ge=0, description="Whose window of `per_iteration` rows to use.")


class PromptFormat(ApiModel):
    """How a row's prompt becomes the messages sent to the model."""

    system_prompt: str | None = None
    prompt_template: str | None = None
    use_chat_template: bool = True


class SamplingParams(ApiModel):
    n: int = Field(8, description="Completions per prompt (search strategies: candidates).")
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256
    adaptive: bool = Field(
        False,
        description="Two rounds: ceil(n/2) samples first, the rest only for prompts not "
        "settled by then (enough answers to keep, or too easy).",
    )
    unsolved_extra_samples: int = Field(
        0, description="A second round of this many samples for prompts with no correct one."
    )
    hint_template: str | None = Field(
        None,
        description="Rationalization: prompts still unsolved are asked again with this "
        "template ({prompt}, {answer}); verified answers are trained on without the hint.",
    )
    hint_samples: int = Field(4, description="Samples per prompt of the rationalization round.")
    strategy: SearchStrategy = "sample"


class EvalSet(ApiModel):
    name: str
    source: PromptSource


class EvalParams(ApiModel):
    sets: list[EvalSet]
    pass_at_k: list[int] = Field(default_factory=lambda: [1])
    samples_per_prompt: int = 1
    temperature: float = 0.0
    max_tokens: int = 256
    concurrency: int | None = Field(
        None, description="Requests in flight while evaluating (default: the endpoint's)."
    )


class ScoreJobConfig(ApiModel):
    """One scoring Job: evaluate the current policy, then sample, score and filter."""

    run: str
    iteration: int
    output_dir: str = Field(description="The iteration's folder; outputs are written here.")
    policy: Endpoint = Field(description="The sampler serving the current policy (evaluation).")
    policy_sync: PolicySync | None = Field(
        None, description="Load this iteration's policy into the long-lived sampler first."
    )
    teacher: Endpoint | None = Field(None, description="Answers training prompts instead.")
    prompt_format: PromptFormat = Field(default_factory=PromptFormat)
    evaluation: EvalParams | None = None
    train: PromptSource | None = Field(None, description="None: evaluation only (final pass).")
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    search: SearchSpec | None = Field(None, description="Search parameters (strategy not sample).")
    rewards: list[RewardSpec]
    filter: FilterSpec = Field(default_factory=FilterSpec)
    min_reward: float = Field(1.0, description="This iteration's threshold (schedule applied).")


class GrpoJob(ApiModel):
    """What a GRPO training Job needs besides the training settings: the sampler serving the
    current policy, the prompts and how they are sent, the rewards, and the policy hand-over."""

    params: GrpoSpec = Field(default_factory=GrpoSpec)
    policy: Endpoint = Field(description="The run's long-lived sampler (the current policy).")
    policy_sync: PolicySync = Field(
        description="The sampler's policy file; policy_path is the iteration's initial policy."
    )
    prompts: PromptSource = Field(description="The training prompts.")
    prompt_format: PromptFormat = Field(default_factory=PromptFormat)
    sampling: SamplingParams = Field(
        description="n = group size, temperature, top_p, max_tokens = max completion tokens."
    )
    rewards: list[RewardSpec]
    step_offset: int = Field(
        0, ge=0, description="Global index of this iteration's first step (prompt order)."
    )


class TrainJobConfig(ApiModel):
    """One training Job: SFT or DPO on the scoring Job's dataset, or GRPO through the sampler;
    then a servable checkpoint."""

    run: str
    iteration: int
    method: Literal["sft", "dpo", "grpo"] = "sft"
    mode: Literal["lora", "full"] = "lora"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    dataset_path: str | None = Field(
        None, description="sft.jsonl or dpo.jsonl written by the scoring Job (not grpo)."
    )
    grpo: GrpoJob | None = Field(None, description="method grpo: the on-policy loop's inputs.")
    init_model_path: str = Field(description="Weights this iteration starts from.")
    reference_model_path: str | None = Field(None, description="DPO reference (frozen).")
    resume_optimizer_from: str | None = Field(
        None, description="Previous iteration's training state (optimizer) to restore."
    )
    output_dir: str = Field(description="The iteration's folder; checkpoint/ is written here.")
    epochs: int = 2
    learning_rate: float = 2e-4
    lr_schedule: Literal["linear", "constant"] = "linear"
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_seq_len: int = 1024
    beta: float = 0.1
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec)
    nodes: int = 1
    gpus_per_node: int = 0
    seed: int = 0
    checkpoint_every_steps: int = Field(
        50, ge=1, description="Save train-state/ this often (and at each epoch end)."
    )


class ScoreSummary(ApiModel):
    """Termination message of the scoring Job (read by the operator from the pod status)."""

    kind: Literal["score"] = "score"
    iteration: int
    eval_scores: dict[str, float] = Field(
        default_factory=dict, description="Keyed '<set name>/pass@<k>', e.g. main/pass@1."
    )
    eval_score: float | None = Field(None, description="The first set's first pass@k.")
    samples: int = 0
    accepted: int = 0
    train_pass_rate: float | None = None
    mean_reward: float | None = None
    seconds: dict[str, float] = Field(default_factory=dict)


class TrainSummary(ApiModel):
    """Termination message of the training Job."""

    kind: Literal["train"] = "train"
    iteration: int
    checkpoint: str
    steps: int = 0
    final_loss: float | None = None
    seconds: dict[str, float] = Field(default_factory=dict)
    samples: int | None = Field(None, description="grpo: completions sampled and scored.")
    mean_reward: float | None = Field(None, description="grpo: mean reward over the steps.")
    policy_lag: int | None = Field(None, description="grpo: steps between sampler and trainee.")


class FailureSummary(ApiModel):
    """Termination message of a job that failed: what went wrong and which knob to turn."""

    kind: Literal["error"] = "error"
    reason: str
    message: str


ConfigT = TypeVar("ConfigT", bound=BaseModel)


def load_config(model: type[ConfigT], path: str | Path) -> ConfigT:
    """Read a job config: a file path, or `env:NAME` for JSON in an environment variable
    (how the operator passes it into a pod without an extra ConfigMap)."""
    text = str(path)
    if text.startswith("env:"):
        raw = os.environ.get(text[4:])
        if raw is None:
            raise FileNotFoundError(f"job config variable {text[4:]} is not set")
        return model.model_validate_json(raw)
    return model.model_validate_json(Path(path).read_text(encoding="utf-8"))

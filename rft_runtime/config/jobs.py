"""Job configs: the contract between the operator (or local executor) and the jobs.

The operator writes one of these as JSON into each pod (`--config FILE`); the job reads it
with `load_config`. All paths are local to the process (inside the pod: under the mounted
run storage). Each job answers with a short summary (under 4 KiB) on the termination log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from .base import ApiModel
from .spec import DeepSpeedSpec, FilterSpec, LoraSpec, RewardSpec

STORAGE_MOUNT = "/mnt/rft"  # where pods mount the run storage
PVC_MOUNT_ROOT = "/mnt/pvc"  # pvc://<claim>/<path> is mounted read-only at /mnt/pvc/<claim>/
CONFIG_ENV = "RFT_JOB_CONFIG"  # pods get the job config as JSON in this variable
TERMINATION_LOG = "/dev/termination-log"
SAMPLER_PORT = 8000
TRAIN_MASTER_PORT = 29500
# DeepSpeed builds its ops (JIT) into TORCH_EXTENSIONS_DIR, a folder of the pod; built ops
# are kept in this cache on the run storage and copied in before the next training starts.
OPS_CACHE_ENV = "RFT_OPS_CACHE"
OPS_CACHE = f"{STORAGE_MOUNT}/.cache/torch_extensions"
POD_EXTENSIONS_DIR = "/tmp/torch_extensions"
# The sampler's compiled graphs (vLLM and torch inductor caches), kept on the run storage
# so that the next sampler of the run does not compile them again.
SAMPLER_CACHE_ENV = {
    "VLLM_CACHE_ROOT": f"{STORAGE_MOUNT}/.cache/vllm",
    "TORCHINDUCTOR_CACHE_DIR": f"{STORAGE_MOUNT}/.cache/torchinductor",
}


class ServeConfig(ApiModel):
    """The sampler: vLLM's OpenAI-compatible server on one model directory."""

    model_path: str = Field(description="HF model directory (base model or a merged checkpoint).")
    served_model_name: str = Field("policy", description="Name clients put in `model`.")
    host: str = "0.0.0.0"
    port: int = SAMPLER_PORT
    max_model_len: int = 2048
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    device: Literal["cpu", "cuda"] = "cpu"


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


class PromptFormat(ApiModel):
    """How a row's prompt becomes the messages sent to the model."""

    system_prompt: str | None = None
    prompt_template: str | None = None
    use_chat_template: bool = True


class SamplingParams(ApiModel):
    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 256


class EvalSet(ApiModel):
    name: str
    source: PromptSource


class EvalParams(ApiModel):
    sets: list[EvalSet]
    pass_at_k: list[int] = Field(default_factory=lambda: [1])
    samples_per_prompt: int = 1
    temperature: float = 0.0
    max_tokens: int = 256


class ScoreJobConfig(ApiModel):
    """One scoring Job: evaluate the current policy, then sample, score and filter."""

    run: str
    iteration: int
    output_dir: str = Field(description="The iteration's folder; outputs are written here.")
    policy: Endpoint = Field(description="The sampler serving the current policy (evaluation).")
    teacher: Endpoint | None = Field(None, description="Answers training prompts instead.")
    prompt_format: PromptFormat = Field(default_factory=PromptFormat)
    evaluation: EvalParams | None = None
    train: PromptSource | None = Field(None, description="None: evaluation only (final pass).")
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    rewards: list[RewardSpec]
    filter: FilterSpec = Field(default_factory=FilterSpec)
    min_reward: float = Field(1.0, description="This iteration's threshold (schedule applied).")


class TrainJobConfig(ApiModel):
    """One training Job: SFT or DPO on the scoring Job's dataset, then a servable checkpoint."""

    run: str
    iteration: int
    method: Literal["sft", "dpo"] = "sft"
    mode: Literal["lora", "full"] = "lora"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    dataset_path: str = Field(description="sft.jsonl or dpo.jsonl written by the scoring Job.")
    init_model_path: str = Field(description="Weights this iteration starts from.")
    reference_model_path: str | None = Field(None, description="DPO reference (frozen).")
    resume_optimizer_from: str | None = Field(
        None, description="Previous iteration's training state (optimizer) to restore."
    )
    output_dir: str = Field(description="The iteration's folder; checkpoint/ is written here.")
    epochs: int = 2
    learning_rate: float = 2e-4
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


def judge_key_env(reward_name: str) -> str:
    """The environment variable holding the API key of the judge reward `reward_name` (the
    operator fills it from the reward's apiKeySecretRef)."""
    return "RFT_JUDGE_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", reward_name.upper())


def iteration_dir(run_dir: str | Path, iteration: int) -> Path:
    """`<run dir>/it-<k>`: everything one iteration writes."""
    return Path(run_dir) / f"it-{iteration}"

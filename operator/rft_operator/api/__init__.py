"""The RFTRun resource (rft.dev/v1alpha1): the single source of truth for spec and status.

The CRD in `crds/` is generated from these models (`rft crd`); a test keeps them in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from rft_runtime.config.base import ApiModel, cel, rules, section
from rft_runtime.config.filter_spec import FilterSpec
from rft_runtime.config.spec import RewardSpec, default_rewards

from .sections import (
    DataSpec,
    EvaluationSpec,
    IterationsSpec,
    ModelSpec,
    RuntimeSpec,
    SamplerSpec,
    StorageSpec,
    TrainingSpec,
)

GROUP = "rft.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RFTRun"
PLURAL = "rftruns"
SINGULAR = "rftrun"
SHORT_NAMES = ["rft"]
MAX_NAME_LENGTH = 40  # children are named <run>-it<k>-sampler and must stay DNS labels
MAX_REWARDS = 16

# The highest total reward: every reward is at most 1, so the sum of the positive weights.
# Plain CEL has no sum() (the Kubernetes list library's is not in every CEL evaluator), so
# the sum is spelled out over the (at most MAX_REWARDS) entries. A python reward may return
# any number, so a spec with one is not judged.
_MAX_TOTAL = " + ".join(
    f"(size(self.rewards) > {i} && self.rewards[{i}].weight > 0.0 ? self.rewards[{i}].weight : 0.0)"
    for i in range(MAX_REWARDS)
)
_UNBOUNDED = (  # not judged: a python reward is unbounded; no positive weight has its own rule
    "self.rewards.all(r, r.weight <= 0.0) || "
    "self.rewards.exists(r, r.type == 'python' && r.weight > 0.0)"
)


class RFTRunSpec(ApiModel):
    """What to fine-tune, on what, how, and for how long."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!has(self.filter.minRewardSchedule) || "
                "size(self.filter.minRewardSchedule) == self.iterations.max",
                "filter.minRewardSchedule needs exactly one entry per iteration; make its length "
                "equal iterations.max",
                ".filter.minRewardSchedule",
            ),
            cel(
                "self.training.method != 'dpo' || self.filter.rejected != 'none'",
                "training.method dpo needs rejected samples; set filter.rejected: lowest",
                ".filter.rejected",
            ),
            cel(
                "has(self.evaluation) || (!has(self.iterations.stopAtEvalScore) && "
                "!has(self.iterations.patience))",
                "iterations.stopAtEvalScore and iterations.patience need an evaluation set; "
                "add evaluation.sets or remove the stop rules",
                ".iterations",
            ),
            cel(
                "self.sampler.maxTokens < self.model.maxModelLen",
                "sampler.maxTokens must be below model.maxModelLen (the context holds the prompt "
                "and the answer); lower sampler.maxTokens or raise model.maxModelLen",
                ".sampler.maxTokens",
            ),
            cel(
                f"has(self.filter.minRewardSchedule) || {_UNBOUNDED} || "
                f"self.filter.minReward <= {_MAX_TOTAL}",
                "filter.minReward is above the highest total reward (each reward is at most 1, so "
                "the sum of the positive weights); lower filter.minReward or raise the weights",
                ".filter.minReward",
            ),
            cel(
                f"!has(self.filter.minRewardSchedule) || {_UNBOUNDED} || "
                f"self.filter.minRewardSchedule.all(m, m <= {_MAX_TOTAL})",
                "filter.minRewardSchedule has an entry above the highest total reward (the sum "
                "of the positive weights); lower it or raise the weights",
                ".filter.minRewardSchedule",
            ),
            cel(
                "self.filter.rejected == 'none' || self.training.method == 'dpo'",
                "filter.rejected is only used by training.method dpo; remove it or set method: dpo",
                ".filter.rejected",
            ),
            cel(
                "!has(self.sampler.search) || !has(self.sampler.search.prm) || "
                "self.rewards.exists(r, r.name == self.sampler.search.prm)",
                "sampler.search.prm must name a reward in rewards[]; add a reward with that name "
                "(e.g. type: steps or type: prm) or fix sampler.search.prm",
                ".sampler.search.prm",
            ),
            cel(
                "self.training.method != 'grpo' || self.sampler.keepAlive",
                "training.method grpo needs sampler.keepAlive: true (the training Job pushes "
                "each new policy into the running sampler); set sampler.keepAlive: true",
                ".sampler.keepAlive",
            ),
            cel(
                "self.training.method != 'grpo' || self.sampler.strategy == 'sample'",
                "training.method grpo samples plain groups of completions, not a search; set "
                "sampler.strategy: sample",
                ".sampler.strategy",
            ),
            cel(
                "self.training.method != 'grpo' || !has(self.sampler.teacher)",
                "training.method grpo learns from the policy's own samples, so "
                "sampler.teacher is never asked; remove sampler.teacher or use method sft",
                ".sampler.teacher",
            ),
            cel(
                "self.training.method != 'grpo' || (has(self.sampler.temperatureSchedule) ? "
                "self.sampler.temperatureSchedule.all(t, t > 0.0) : self.sampler.temperature "
                "> 0.0)",
                "training.method grpo needs sampler.temperature (and every "
                "temperatureSchedule entry) above 0: greedy groups are identical and teach "
                "nothing; set sampler.temperature: 1.0",
                ".sampler.temperature",
            ),
            cel(
                "!has(self.training.grpo) || !has(self.training.grpo.maxCompletionTokens) || "
                "self.training.grpo.maxCompletionTokens < self.model.maxModelLen",
                "training.grpo.maxCompletionTokens must be below model.maxModelLen (the context "
                "holds the prompt and the answer); lower it or raise model.maxModelLen",
                ".training.grpo.maxCompletionTokens",
            ),
            cel(
                "self.rewards.exists(r, r.weight > 0.0)",
                "spec.rewards needs at least one reward with a positive weight; set weight: 1.0 on "
                "the reward that measures success",
                ".rewards",
            ),
        )
    )

    model: ModelSpec = Field(description="The base model.")
    data: DataSpec = Field(description="Training prompts and reference answers.")
    iterations: IterationsSpec = section(IterationsSpec, "Iteration count and stop rules.")
    sampler: SamplerSpec = section(SamplerSpec, "Sampling (policy server or teacher endpoint).")
    rewards: list[RewardSpec] = Field(
        default_factory=default_rewards,
        min_length=1,
        max_length=MAX_REWARDS,
        json_schema_extra={
            "default": [{"name": "answer", "type": "math", "weight": 1.0}],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
        description="Reward functions, combined by weight (default: math answer equivalence).",
    )
    filter: FilterSpec = section(FilterSpec, "Which samples are kept for training.")
    training: TrainingSpec = section(TrainingSpec, "Training method and scale.")
    evaluation: EvaluationSpec | None = Field(None, description="Held-out evaluation.")
    storage: StorageSpec = section(StorageSpec, "Run storage.")
    runtime: RuntimeSpec = section(RuntimeSpec, "Image and scheduling of every pod.")
    suspend: bool = Field(False, description="Pause: delete running pods, keep what is written.")


Stage = Literal[
    "Pending",
    "StartingSampler",
    "Sampling",
    "Training",
    "Evaluating",
    "Succeeded",
    "Failed",
    "Suspended",
]
ConditionType = Literal["Ready", "Sampling", "Training", "Succeeded", "Failed", "Suspended"]


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(max_length=316, description="Ready, Sampling, Training, Succeeded, ...")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024, description="CamelCase machine-readable reason.")
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(description="RFC 3339 time of the last status change.")
    observed_generation: int | None = Field(None, ge=0)


class IterationStatus(ApiModel):
    """What one iteration produced."""

    index: int = Field(ge=0, description="Iteration number (0-based).")
    eval_score: float | None = Field(None, description="Primary evaluation score (0..1).")
    eval_scores: dict[str, float] | None = Field(
        None, description="Score per evaluation set and metric, e.g. main/pass@1."
    )
    train_pass_rate: float | None = Field(None, description="Share of samples kept.")
    mean_reward: float | None = Field(
        None, description="Mean total reward of all samples (grpo: over the iteration's steps)."
    )
    samples: int | None = Field(None, ge=0, description="Completions scored.")
    accepted: int | None = Field(None, ge=0, description="Training examples kept.")
    checkpoint: str | None = Field(None, description="Where this iteration's weights are.")
    policy_lag: int | None = Field(
        None,
        ge=0,
        description="grpo: policy steps between the policy that sampled a batch and the one "
        "it trained (0: on-policy; 1: training.grpo.async).",
    )
    durations: dict[str, float] | None = Field(
        None, description="Seconds per stage (sampling, training, evaluation)."
    )
    started_at: str | None = None
    finished_at: str | None = None


class BestStatus(ApiModel):
    """The best checkpoint so far by the primary evaluation score."""

    iteration: int = Field(ge=-1, description="-1: the base model.")
    eval_score: float | None = Field(None, description="None when the run has no evaluation.")
    checkpoint: str


class BaselineStatus(ApiModel):
    """Evaluation of the base model before any training."""

    eval_score: float | None = None
    eval_scores: dict[str, float] | None = None


class RFTRunStatus(ApiModel):
    """Everything the operator records; every field is declared so the API server keeps it."""

    observed_generation: int | None = Field(None, ge=0)
    iteration: int | None = Field(None, ge=0, description="Iteration in progress (0-based).")
    stage: Stage | None = None
    message: str | None = Field(None, description="What the run is doing, in words.")
    conditions: list[Condition] | None = Field(
        None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    iterations: list[IterationStatus] | None = None
    baseline: BaselineStatus | None = None
    best: BestStatus | None = None
    start_time: str | None = None
    completion_time: str | None = None
    retry: str | None = Field(
        None,
        description="The last rft.dev/retry annotation value acted on (retry of a Failed run).",
    )


class ObjectMeta(ApiModel):
    """The parts of metadata the tools read; the API server owns the rest."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None


class RFTRun(ApiModel):
    """The whole resource, as `kubectl get rft NAME -o yaml` shows it."""

    api_version: Literal["rft.dev/v1alpha1"] = Field("rft.dev/v1alpha1", alias="apiVersion")
    kind: Literal["RFTRun"] = "RFTRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RFTRunSpec
    status: RFTRunStatus | None = None


def parse_spec(spec: dict[str, Any]) -> RFTRunSpec:
    """A spec admitted by the API server, as models (defaults filled in)."""
    return RFTRunSpec.model_validate(spec)

"""The sections of an RFTRun spec that only the operator reads: the model, data,
iterations, sampler, training, evaluation, storage and runtime (scheduling) sections.

The sections the jobs also read (rewards, filter, LoRA, DeepSpeed) are in
`rft_runtime.config.spec`, since they travel in the job configs. Cross-field rules are CEL
(`x-kubernetes-validations`): the API server enforces them at admission and `rft validate`
evaluates the very same rules offline.

Longer than 400 lines on purpose: it is declarative only (fields, descriptions, CEL rules),
one class per spec section, read as the schema `rft crd` generates from it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from rft_runtime.config.base import ApiModel, cel, rules, section
from rft_runtime.config.spec import (
    DNS_LABEL,
    RELATIVE_PATH_PATTERN,
    URI_HELP,
    DeepSpeedSpec,
    FieldName,
    GrpoSpec,
    LoraSpec,
    SearchSpec,
    SearchStrategy,
    SecretKeyRef,
    Uri,
    search_rules,
)

# resource.Quantity's grammar (k8s.io/apimachinery), without a sign: requests and limits
# must not be negative.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE][-+]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)],
    Field(description="A Kubernetes quantity such as 2, 500m, 4Gi."),
]


class ResourceRequirements(ApiModel):
    """Container requests/limits, as in a Pod spec (e.g. cpu, memory, nvidia.com/gpu)."""

    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class ModelSpec(ApiModel):
    """The base policy: the weights the first iteration samples from and trains."""

    uri: Uri = Field(
        description="Where the base model (a Hugging Face directory) lives; " + URI_HELP
    )
    max_model_len: int = Field(
        2048,
        ge=64,
        le=1_048_576,
        description="Context length the sampler serves (prompt + answer).",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights dtype for serving; auto picks bfloat16 on GPU, float32 on CPU."
    )
    use_chat_template: bool = Field(
        True, description="Wrap prompts with the tokenizer's chat template (instruct models)."
    )


class DataSpec(ApiModel):
    """Training prompts with reference answers, one JSON object per line."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!has(self.promptTemplate) || self.promptTemplate.contains('{prompt}')",
                "data.promptTemplate must contain the placeholder {prompt}; write it where "
                "the prompt goes, e.g. 'Solve: {prompt}'",
                ".promptTemplate",
            ),
            cel(
                "!has(self.promptsPerIteration) || !has(self.maxPrompts) || "
                "self.promptsPerIteration <= self.maxPrompts",
                "data.promptsPerIteration is more than data.maxPrompts, so every iteration "
                "would use all prompts; lower promptsPerIteration or raise maxPrompts",
                ".promptsPerIteration",
            ),
        )
    )

    train: Uri = Field(description="JSONL file of training prompts; " + URI_HELP)
    prompt_field: FieldName = Field("prompt", description="JSON key holding the prompt text.")
    answer_field: FieldName = Field("answer", description="JSON key holding the reference answer.")
    id_field: FieldName | None = Field(
        None, description="JSON key holding a stable prompt id (default: line number)."
    )
    system_prompt: str | None = Field(
        None, max_length=8192, description="System message prepended to every prompt."
    )
    prompt_template: str | None = Field(
        None, max_length=8192, description="Template applied to each prompt; must contain {prompt}."
    )
    max_prompts: int | None = Field(None, ge=1, description="Use at most this many prompts.")
    prompts_per_iteration: int | None = Field(
        None,
        ge=1,
        description="Sample only this many prompts per iteration: iteration k takes the k-th "
        "run of this many consecutive prompts of the file, wrapping around at its end, so "
        "each iteration learns from problems the policy has not trained on yet (shuffle a "
        "sorted file first). Unset: every prompt, every iteration.",
    )
    max_row_bytes: int = Field(
        1_048_576,
        ge=64,
        le=1_073_741_824,
        description="Longest line (bytes) of a data or evaluation file; a longer one fails the "
        "run before sampling with reason InvalidData.",
    )


class IterationsSpec(ApiModel):
    """How many sample → score → train rounds, and when to stop early."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!has(self.patience) || self.patience < self.max",
                "iterations.patience must be below iterations.max, or it can never stop the run "
                "early; lower patience or remove it",
                ".patience",
            ),
        )
    )

    max: int = Field(3, ge=1, le=100, description="Maximum number of iterations (at least 1).")
    stop_at_eval_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Stop once the first evaluation set's score reaches this value (0..1).",
    )
    patience: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Stop after this many iterations without a new best evaluation score.",
    )


class TeacherSpec(ApiModel):
    """An external OpenAI-compatible endpoint that answers instead of the policy (distillation)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "has(self.model) && size(self.model) > 0",
                "sampler.teacher.model is required when sampler.teacher.url is set; name the "
                "model the endpoint serves, e.g. model: Qwen2.5-72B-Instruct",
                ".model",
            ),
        )
    )

    url: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Base URL of an OpenAI-compatible API, e.g. https://host/v1.",
    )
    model: str | None = Field(None, max_length=256, description="Model name the endpoint serves.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the API key (sent as a bearer token)."
    )


class RationalizeSpec(ApiModel):
    """STaR rationalization: prompts no sample solved are asked again with the reference
    answer as a hint; answers the rewards verify are trained on without the hint."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self.template.contains('{answer}') && self.template.contains('{prompt}')",
                "sampler.rationalize.template must contain both placeholders {prompt} and "
                "{answer}; write the hint around them",
                ".template",
            ),
        )
    )

    template: str = Field(
        "{prompt}\n\nHint: the correct answer is {answer}.",
        max_length=4096,
        description="The hinted prompt; {prompt} and {answer} are replaced.",
    )
    samples_per_prompt: int = Field(
        4, ge=1, le=256, description="Completions asked per unsolved prompt."
    )


class SamplerSpec(ApiModel):
    """The vLLM server that serves the current policy, and how prompts are sampled."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self.tensorParallelSize == 1 || self.tensorParallelSize == self.gpusPerReplica",
                "sampler.tensorParallelSize must be 1 or equal sampler.gpusPerReplica; "
                "set it to the number of GPUs of one replica, or 1",
                ".tensorParallelSize",
            ),
            *search_rules(),
            cel(
                "!self.adaptive || (self.strategy == 'sample' && self.samplesPerPrompt >= 2)",
                "sampler.adaptive needs strategy sample and samplesPerPrompt of at least 2 "
                "(it samples in two rounds); set adaptive: false or samplesPerPrompt >= 2",
                ".adaptive",
            ),
        )
    )

    strategy: SearchStrategy = Field(
        "sample",
        description="How candidates are generated: sample (independent completions), bestOfN "
        "(keep the top by the search.prm reward), beam (step-level beam search), dvts "
        "(diverse verifier tree search) or mcts (Monte Carlo tree search over steps); see "
        "docs/sampling-strategies.md.",
    )
    samples_per_prompt: int = Field(
        8,
        ge=1,
        le=256,
        description="Completions sampled per training prompt (search strategies: candidates "
        "each prompt returns).",
    )
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature.")
    temperature_schedule: list[Annotated[float, Field(ge=0, le=2)]] | None = Field(
        None,
        max_length=100,
        description="Per-iteration temperature (entry k for iteration k; later iterations "
        "use the last entry). Replaces temperature.",
    )
    adaptive: bool = Field(
        False,
        description="Sample in two rounds: half of samplesPerPrompt first, the rest only for "
        "prompts still open. A prompt is settled after the first round when it already has "
        "filter.maxPerPrompt answers to keep or is too easy for filter.dropEasyAbove; "
        "unsolved prompts always get the second round. Saves sampling once the policy "
        "solves prompts (docs/tuning.md).",
    )
    unsolved_extra_samples: int = Field(
        0,
        ge=0,
        le=256,
        description="Adaptive sampling: prompts with no correct sample after the first round "
        "get this many more (0: off). Spends the budget where the policy has nothing to learn "
        "from yet.",
    )
    rationalize: RationalizeSpec | None = Field(
        None,
        description="Opt-in STaR rationalization of prompts still unsolved (after "
        "unsolvedExtraSamples): hinted with their reference answer.",
    )
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling probability mass.")
    max_tokens: int = Field(256, ge=1, le=131072, description="Maximum tokens per completion.")
    replicas: int = Field(1, ge=1, le=64, description="Sampler Deployment replicas.")
    concurrency: int = Field(
        16, ge=1, le=4096, description="Requests in flight from the scoring Job."
    )
    request_timeout_seconds: int = Field(
        300, ge=1, le=86400, description="Timeout of one completion request."
    )
    gpus_per_replica: int = Field(0, ge=0, le=16, description="GPUs per sampler pod (0: CPU).")
    tensor_parallel_size: int = Field(1, ge=1, le=16, description="vLLM tensor parallelism.")
    gpu_memory_utilization: float = Field(
        0.9, ge=0.1, le=0.99, description="Fraction of GPU memory vLLM may use."
    )
    resources: ResourceRequirements | None = Field(None, description="Sampler pod resources.")
    keep_alive: bool = Field(
        True,
        description="One sampler for the whole run: each new policy's weights are loaded "
        "into it in place (seconds) instead of starting a new server per iteration (minutes). "
        "It stays up while training runs, so the sampler and the training Job need their "
        "CPUs/GPUs at the same time; set false where they cannot (e.g. one GPU node).",
    )
    teacher: TeacherSpec | None = Field(
        None,
        description="Answer training prompts with this endpoint instead of the policy "
        "(distillation); evaluation still samples the policy.",
    )
    search: SearchSpec | None = Field(
        None, description="Budget and shape of the search (strategies other than sample)."
    )


class TrainingSpec(ApiModel):
    """How each iteration trains on the kept samples."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self.mode == 'lora' || !has(self.lora)",
                "training.lora is only used with training.mode lora; remove it or set mode: lora",
                ".lora",
            ),
            cel(
                "!self.resumeOptimizer || self.mode == 'full'",
                "training.resumeOptimizer does nothing with training.mode lora (each iteration "
                "trains a new adapter); remove it or set mode: full",
                ".resumeOptimizer",
            ),
            cel(
                "!has(self.grpo) || self.method == 'grpo'",
                "training.grpo is only used with training.method grpo; remove it or set "
                "method: grpo",
                ".grpo",
            ),
            cel(
                "!self.resumeOptimizer || self.initFrom == 'previous'",
                "training.resumeOptimizer needs training.initFrom previous (the base model "
                "has no optimizer state); set initFrom: previous or resumeOptimizer: false",
                ".resumeOptimizer",
            ),
        )
    )

    method: Literal["sft", "dpo", "grpo"] = Field(
        "sft",
        description="sft: fine-tune on kept samples; dpo: preference pairs; grpo: on-policy "
        "RL, the training Job samples the policy through the sampler and takes policy-gradient "
        "steps (training.grpo; the filter and the scoring Job's sampling are not used).",
    )
    grpo: GrpoSpec | None = Field(
        None, description="GRPO parameters (method grpo; defaults apply when omitted)."
    )
    mode: Literal["lora", "full"] = Field(
        "lora", description="Train a LoRA adapter or all weights."
    )
    lora: LoraSpec | None = Field(None, description="LoRA shape (defaults apply when omitted).")
    epochs: int = Field(
        2, ge=1, le=100, description="Passes over the kept samples (not used by grpo)."
    )
    learning_rate: float = Field(2e-4, gt=0, le=1, description="Peak learning rate (> 0).")
    lr_schedule: Literal["linear", "constant"] | None = Field(
        None,
        description="Learning rate over one training Job's steps: linear (from learningRate "
        "down toward 0 at the last step, as transformers' Trainer does by default) or "
        "constant (learningRate throughout). Default: linear for sft and dpo (epochs over a "
        "fixed set of samples), constant for grpo (every step on fresh samples).",
    )
    batch_size: int = Field(
        8,
        ge=1,
        le=4096,
        description="Micro-batch size per device (grpo: sequences per forward pass).",
    )
    gradient_accumulation_steps: int = Field(
        1,
        ge=1,
        le=1024,
        description="Micro-batches per optimizer step (grpo: as many as one step's batch needs).",
    )
    max_seq_len: int = Field(
        1024, ge=16, le=1_048_576, description="Truncate prompt + completion to this many tokens."
    )
    beta: float = Field(0.1, gt=0, le=10, description="DPO temperature beta.")
    checkpoint_every_steps: int = Field(
        50,
        ge=1,
        le=1_000_000,
        description="Save the training state this often (and at each epoch end); a restarted "
        "training pod resumes from the last one.",
    )
    init_from: Literal["base", "previous"] = Field(
        "previous", description="Start each iteration from the base model or the previous one."
    )
    resume_optimizer: bool = Field(
        False, description="Also restore the previous iteration's optimizer state."
    )
    nodes: int = Field(1, ge=1, le=256, description="Training pods (one per node).")
    gpus_per_node: int = Field(0, ge=0, le=16, description="GPUs per training pod (0: CPU).")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto",
        description="auto: bf16 on GPU; on CPU fp32 weights, with the forward pass under bf16 "
        "autocast where the CPU has native bf16 (AVX512-BF16/AMX).",
    )
    deepspeed: DeepSpeedSpec = section(DeepSpeedSpec, "DeepSpeed ZeRO settings.")
    resources: ResourceRequirements | None = Field(None, description="Training pod resources.")


class EvalSetSpec(ApiModel):
    """A held-out set; the first one drives the stop rules, the others guard against regressions."""

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="Name used in metrics.")
    uri: Uri = Field(description="JSONL file of prompts and reference answers; " + URI_HELP)
    prompt_field: FieldName | None = Field(None, description="Default: data.promptField.")
    answer_field: FieldName | None = Field(None, description="Default: data.answerField.")
    max_samples: int | None = Field(None, ge=1, description="Evaluate at most this many prompts.")
    max_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Guard sets only: fail an iteration whose score drops more than this "
        "below the baseline.",
    )


class EvaluationSpec(ApiModel):
    """Held-out evaluation after every iteration (and of the base model)."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!has(self.sets[0].maxDrop)",
                "evaluation.sets[0].maxDrop is not allowed because the first set drives the stop "
                "rules; put maxDrop on the guard sets after it",
                ".sets",
            ),
            cel(
                "self.evaluateBase || self.sets.all(s, !has(s.maxDrop))",
                "evaluation.sets[].maxDrop compares with the base model's score, which "
                "evaluation.evaluateBase: false never measures, so the guard can never trip; set "
                "evaluateBase: true or remove maxDrop",
                ".evaluateBase",
            ),
            cel(
                "self.passAtK.all(k, k <= self.samplesPerPrompt)",
                "evaluation.passAtK values must not exceed evaluation.samplesPerPrompt; raise "
                "samplesPerPrompt to the largest k",
                ".passAtK",
            ),
            cel(
                "self.samplesPerPrompt == 1 || self.temperature > 0.0",
                "evaluation.temperature must be > 0 when samplesPerPrompt > 1 (greedy samples are "
                "identical); set temperature: 0.8 or samplesPerPrompt: 1",
                ".temperature",
            ),
        )
    )

    sets: list[EvalSetSpec] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Evaluation sets; the first is the primary one.",
    )
    pass_at_k: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        [1],
        min_length=1,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Report pass@k for these k; the primary score is the first.",
    )
    samples_per_prompt: int = Field(1, ge=1, le=256, description="Samples per eval prompt.")
    temperature: float = Field(0.0, ge=0, le=2, description="0: greedy decoding.")
    evaluate_base: bool = Field(True, description="Also evaluate the base model (baseline).")


class StorageSpec(ApiModel):
    """Where datasets, samples, checkpoints and metrics of the run are kept."""

    pvc: str = Field(
        "rft-runs",
        pattern=DNS_LABEL,
        max_length=63,
        description="PersistentVolumeClaim (ReadWriteMany for multi-node) mounted by every pod.",
    )
    sub_path: str | None = Field(
        None,
        max_length=512,
        pattern=RELATIVE_PATH_PATTERN,
        description="Relative directory inside the claim (no leading '/', no '..').",
    )


class Toleration(ApiModel):
    """A Pod toleration, as in core/v1."""

    key: str | None = Field(None, max_length=316)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class LocalObjectReference(ApiModel):
    name: str = Field(max_length=253)


class SandboxSpec(ApiModel):
    """What the scoring pod's container (and a grpo training pod's, which scores too) may do
    so that the reward sandbox (bubblewrap: user, mount, PID and network namespaces) can be
    built. Applies only to runs with `code` or `python` rewards; other containers keep
    RuntimeDefault."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "(self.seccompProfile == 'Localhost') == has(self.localhostProfile)",
                "runtime.sandbox.localhostProfile is required exactly when "
                "runtime.sandbox.seccompProfile is Localhost; set both or neither",
                ".localhostProfile",
            ),
        )
    )

    seccomp_profile: Literal["Unconfined", "RuntimeDefault", "Localhost"] = Field(
        "Unconfined",
        description="Seccomp profile of the scoring container. RuntimeDefault forbids the "
        "namespaces the sandbox needs (code/python rewards then refuse: SandboxUnavailable) "
        "unless runtimeClassName provides them; Localhost: a node profile that also allows "
        "clone/unshare with namespace flags, mount, umount2 and pivot_root.",
    )
    localhost_profile: str | None = Field(
        None, max_length=253, description="Node-local profile path when Localhost."
    )
    app_armor_profile: Literal["Unconfined", "RuntimeDefault"] = Field(
        "Unconfined",
        description="AppArmor profile of the scoring container (the default container "
        "profile denies the mounts bubblewrap makes).",
    )


class RuntimeSpec(ApiModel):
    """Image and scheduling for every pod of the run."""

    image: str = Field(
        "ghcr.io/rft-dev/rft-runtime-cpu:0.1.0",
        min_length=1,
        max_length=512,
        description="Runtime image (runtime-cpu or runtime-gpu).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[LocalObjectReference] | None = Field(None, max_length=16)
    resources: ResourceRequirements | None = Field(None, description="Scoring Job pod resources.")
    node_selector: dict[str, str] | None = Field(None, description="Pod nodeSelector.")
    tolerations: list[Toleration] | None = Field(
        None, max_length=64, description="Pod tolerations."
    )
    queue_name: str | None = Field(
        None, max_length=63, description="Kueue LocalQueue (label kueue.x-k8s.io/queue-name)."
    )
    priority_class_name: str | None = Field(None, max_length=253)
    service_account_name: str | None = Field(None, max_length=253)
    runtime_class_name: str | None = Field(
        None,
        max_length=253,
        description="RuntimeClass of every pod of the run, e.g. gvisor or kata for a "
        "stronger boundary around the whole pod.",
    )
    sandbox: SandboxSpec = section(
        SandboxSpec, "Scoring-container settings the code/python reward sandbox needs."
    )

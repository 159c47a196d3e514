"""The sections of an RFTRun spec that the jobs read too (rewards, filter, LoRA, DeepSpeed),
since they travel in the job configs, and the patterns every section uses.

`rft_operator.api` composes them, with the sections only the operator reads
(`rft_operator.api.sections`), into the resource. The filter section is in
`filter_spec.py`. Cross-field rules are CEL (`x-kubernetes-validations`): the API server
enforces them at admission and `rft validate` evaluates the very same rules offline.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .base import ApiModel, cel, rules

# Patterns are RE2 (the API server's regex engine; pydantic's Rust engine is the same
# family), so no look-arounds. A path segment is never empty, "." or "..".
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SEGMENT = r"([^/.\s][^/\s]*|\.[^/.\s][^/\s]*|\.\.[^/\s]+)"
URI_PATTERN = rf"^(pvc://{_SUBDOMAIN}|file://)(/{_SEGMENT})+$"
URI_HELP = (
    "a URI: pvc://<claim>/<path> (a PersistentVolumeClaim of the run's namespace) or "
    "file:///<absolute path> (inside the runtime image, or on this machine with --local); "
    "the claim is a lowercase DNS-1123 name and no path segment is empty, '.' or '..'"
)
RELATIVE_PATH_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = rf"^{_SUBDOMAIN}$"
Uri = Annotated[str, Field(pattern=URI_PATTERN, max_length=1024, description=URI_HELP)]
FieldName = Annotated[str, Field(min_length=1, max_length=128)]


class SecretKeyRef(ApiModel):
    """A key in a Secret of the run's namespace; its value never appears in status or logs."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


RewardType = Literal[
    "math",
    "exact",
    "normalized",
    "numeric",
    "regex",
    "python",
    "contains",
    "fuzzy",
    "bleu",
    "rouge",
    "embedding",
    "code",
    "judge",
    "orm",
    "prm",
    "steps",
]


class CodeSpec(ApiModel):
    """Limits of the sandbox that runs model-written code against the row's tests (type: code)."""

    timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="Wall-clock limit for all tests of one completion."
    )
    memory_mb: int = Field(
        1024, ge=64, le=65536, description="Address-space limit of the sandboxed process (MiB)."
    )
    max_tests: int = Field(100, ge=1, le=10000, description="Run at most this many test cases.")


class JudgeSpec(ApiModel):
    """An LLM judge behind an OpenAI-compatible chat endpoint (type: judge)."""

    url: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Base URL of an OpenAI-compatible API, e.g. https://host/v1.",
    )
    model: str = Field(min_length=1, max_length=256, description="Model name the endpoint serves.")
    rubric: str = Field(
        "Rate how correct and helpful the response is.",
        min_length=1,
        max_length=16384,
        description="What the judge grades; the reply must end with 'SCORE: <number>'.",
    )
    max_score: float = Field(
        10.0, gt=0, le=1000, description="Top of the judge's scale; scores are divided by it."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the API key (sent as a bearer token)."
    )
    temperature: float = Field(0.0, ge=0, le=2, description="Judge sampling temperature.")
    max_tokens: int = Field(512, ge=1, le=32768, description="Longest judge reply.")
    timeout_seconds: float = Field(60.0, gt=0, le=3600, description="Timeout of one request.")
    max_retries: int = Field(3, ge=0, le=20, description="Retries on errors, with backoff.")
    concurrency: int = Field(8, ge=1, le=256, description="Judge requests in flight.")


class RewardSpec(ApiModel):
    """One reward function; the total reward is the weighted sum of all of them."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "self.type != 'regex' || has(self.pattern)",
                "rewards[].pattern is required when type is regex; add pattern: '<regular "
                "expression the completion must match>'",
                ".pattern",
            ),
            cel(
                "!has(self.pattern) || self.type == 'regex'",
                "rewards[].pattern is only used by type regex; remove it or set type: regex",
                ".pattern",
            ),
            cel(
                "self.type != 'python' || has(self.source)",
                "rewards[].source is required when type is python; add the code of "
                "def reward(prompt, completion, answer) -> float",
                ".source",
            ),
            cel(
                "!has(self.source) || self.type == 'python'",
                "rewards[].source is only used by type python; remove it or set type: python",
                ".source",
            ),
            cel(
                "!has(self.tolerance) || self.type == 'numeric'",
                "rewards[].tolerance is only used by type numeric; remove it or set type: numeric",
                ".tolerance",
            ),
            cel(
                "self.type != 'judge' || has(self.judge)",
                "rewards[].judge is required when type is judge; add judge: {url: "
                "https://host/v1, model: <served model>, rubric: <what to grade>}",
                ".judge",
            ),
            cel(
                "!has(self.judge) || self.type == 'judge'",
                "rewards[].judge is only used by type judge; remove it or set type: judge",
                ".judge",
            ),
            cel(
                "!(self.type in ['orm', 'prm']) || has(self.model)",
                "rewards[].model is required when type is orm or prm; add model: "
                "pvc://<claim>/<reward model dir> (a sequence-classification model)",
                ".model",
            ),
            cel(
                "!has(self.model) || self.type in ['orm', 'prm', 'embedding']",
                "rewards[].model is only used by types orm, prm and embedding; remove it or "
                "change type",
                ".model",
            ),
            cel(
                "(!has(self.stepSeparator) && !has(self.aggregate)) || self.type in ['prm', "
                "'steps']",
                "rewards[].stepSeparator and rewards[].aggregate are only used by types prm and "
                "steps; remove them or set type: prm or steps",
                ".stepSeparator",
            ),
            cel(
                "!has(self.ignoreCase) || self.type in ['exact', 'contains']",
                "rewards[].ignoreCase is only used by types exact and contains; remove it or "
                "change type",
                ".ignoreCase",
            ),
            cel(
                "(!has(self.batchSize) && !has(self.maxLength)) || "
                "self.type in ['orm', 'prm', 'embedding']",
                "rewards[].batchSize and rewards[].maxLength are only used by types orm, prm and "
                "embedding; remove them or change type",
                ".batchSize",
            ),
            cel(
                "!has(self.code) || self.type == 'code'",
                "rewards[].code is only used by type code; remove it or set type: code",
                ".code",
            ),
        )
    )

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=63,
        description="Unique name; reported per reward in the metrics.",
    )
    type: RewardType = Field(description="Which reward function scores the completion.")
    weight: float = Field(1.0, ge=-100, le=100, description="Weight in the total reward.")
    gate: bool = Field(False, description="If this reward is 0, the total reward is 0.")
    pattern: str | None = Field(
        None, max_length=4096, description="Regular expression (type: regex)."
    )
    tolerance: float | None = Field(None, ge=0, description="Relative tolerance (type: numeric).")
    source: str | None = Field(
        None,
        max_length=65536,
        description="Python source defining reward(prompt, completion, answer) -> float "
        "(type: python); runs in a sandbox without network.",
    )
    answer_field: FieldName | None = Field(
        None,
        description="Row column this reward compares against instead of data.answerField "
        "(e.g. tests for type code); lists and objects arrive as JSON.",
    )
    ignore_case: bool | None = Field(
        None, description="Compare case-insensitively (types exact, contains)."
    )
    model: Uri | None = Field(
        None,
        description="Reward model directory (types orm, prm: a sequence-classification model; "
        "embedding: a sentence-embedding model, default the bundled all-MiniLM-L6-v2); " + URI_HELP,
    )
    step_separator: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Splits a completion into reasoning steps (type prm: default a blank line; "
        "type steps: default a newline).",
    )
    aggregate: Literal["min", "last", "mean"] | None = Field(
        None, description="How per-step scores combine (types prm, steps; default min)."
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Sequences per forward pass (types orm, prm, embedding; default 16).",
    )
    max_length: int | None = Field(
        None,
        ge=16,
        le=131072,
        description="Tokens per scored sequence, longer are truncated (types orm, prm, "
        "embedding; default 2048).",
    )
    code: CodeSpec | None = Field(
        None, description="Sandbox limits (type code; tests come from the reference answer)."
    )
    judge: JudgeSpec | None = Field(None, description="The judge endpoint and rubric (type judge).")


def default_rewards() -> list[RewardSpec]:
    return [RewardSpec(name="answer", type="math", weight=1.0)]


class LoraSpec(ApiModel):
    """LoRA adapter shape (training.mode: lora)."""

    r: int = Field(16, ge=1, le=1024, description="Adapter rank.")
    alpha: int = Field(32, ge=1, le=4096, description="Scaling numerator (alpha / r).")
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the adapter input. Off by default: on CPU it costs a third "
        "of a LoRA step (a random mask per adapted module), and RFT's short trainings on "
        "fresh samples learned no less without it (docs/tuning.md).",
    )
    target_modules: list[Annotated[str, Field(max_length=128)]] = Field(
        ["all-linear"],
        min_length=1,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Module names to adapt, or [all-linear].",
    )


class DeepSpeedSpec(ApiModel):
    """DeepSpeed ZeRO settings of the training Job."""

    model_config = ConfigDict(
        json_schema_extra=rules(
            cel(
                "!self.offloadParams || self.zeroStage == 3",
                "training.deepspeed.offloadParams needs zeroStage 3; set zeroStage: 3 or "
                "offloadParams: false",
                ".offloadParams",
            ),
            cel(
                "!self.offloadOptimizer || self.zeroStage >= 1",
                "training.deepspeed.offloadOptimizer needs zeroStage 1, 2 or 3; raise "
                "zeroStage or set offloadOptimizer: false",
                ".offloadOptimizer",
            ),
        )
    )

    zero_stage: int = Field(2, ge=0, le=3, description="ZeRO stage 0..3.")
    offload_optimizer: bool = Field(False, description="Keep optimizer state in CPU memory.")
    offload_params: bool = Field(False, description="Keep parameters in CPU memory (stage 3).")


class GrpoSpec(ApiModel):
    """On-policy RL (training.method: grpo): the training Job samples groups of completions
    from the current policy through the sampler, scores them with the rewards, and takes
    one policy-gradient step per batch, pushing each new policy into the sampler."""

    group_size: int = Field(
        8,
        ge=2,
        le=256,
        description="Completions sampled per prompt; advantages are "
        "normalised within each group (at least 2: one completion has nothing to compare to).",
    )
    prompts_per_step: int = Field(
        8,
        ge=1,
        le=4096,
        description="Prompts per policy step (rounded up to a multiple of "
        "the training ranks: each rank samples and scores its own share).",
    )
    steps_per_iteration: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Policy steps per iteration; the usual evaluation follows each iteration.",
    )
    kl_coef: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Weight of the k3 KL penalty against the iteration's "
        "initial policy; 0: no penalty and no reference forward pass.",
    )
    clip_range: float = Field(
        0.2, gt=0, le=1, description="PPO clip range of the per-token probability ratio."
    )
    loss_aggregation: Literal["token", "sequence"] = Field(
        "token",
        description="token: mean over every completion token of the batch; "
        "sequence: mean over each completion's tokens, then over completions.",
    )
    scale_by_std: bool = Field(
        True,
        description="Divide each group's centred rewards by their std (false: only "
        "subtract the group mean).",
    )
    max_completion_tokens: int | None = Field(
        None,
        ge=1,
        le=131072,
        description="Longest sampled completion (default: sampler.maxTokens).",
    )
    async_: bool = Field(
        False,
        alias="async",
        description="Generate the next batch while the current step trains: the batch comes "
        "from the policy one step old (the lag is recorded).",
    )


SANDBOXED_TYPES = frozenset({"code", "python"})
"""Reward types whose code runs in the OS sandbox (rft_runtime/rewards/sandbox.py)."""


SearchStrategy = Literal["sample", "bestOfN", "beam", "dvts", "mcts"]
"""sample: independent completions (no search); the others search with a reward as guide."""

STEP_STRATEGIES = ("beam", "dvts", "mcts")
"""Strategies that generate step by step (stop strings + continuation of a partial answer)."""


class SearchSpec(ApiModel):
    """Parameters of the search strategies (sampler.strategy bestOfN, beam, dvts or mcts).

    Unset fields take the defaults of `rft_runtime.score.search.params`; the ones only one
    strategy reads are rejected with the others (CEL on the sampler section), so a typo'd
    strategy cannot silently ignore them.
    """

    prm: str | None = Field(
        None,
        pattern=DNS_LABEL,
        max_length=63,
        description="Name of the reward in rewards[] that scores partial and finished "
        "solutions (a type: prm model, the rule-based type: steps checker, or any reward); "
        "its value ranks the candidates.",
    )
    token_budget: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="Generated tokens per prompt, all requests together (default: "
        "samplesPerPrompt x maxTokens, what plain sampling may spend).",
    )
    completion_budget: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="Generations per prompt: every returned continuation, step or full "
        "solution, counts one.",
    )
    beam_width: int | None = Field(
        None, ge=1, le=256, description="Partial solutions kept per depth (beam; default 4)."
    )
    expansion: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Continuations generated per expanded node and step (beam, dvts, mcts), or "
        "completions per request (bestOfN); default 4.",
    )
    subtrees: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Independent subtrees the budget is split into (dvts; default 4).",
    )
    step_separator: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Stop string that ends a reasoning step (beam, dvts, mcts; default a "
        "blank line). The separator twice in a row ends a solution (all search strategies).",
    )
    max_depth: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Steps per solution at most; the last step runs to the end (beam, dvts, "
        "mcts; default 8).",
    )
    exploration_constant: float | None = Field(
        None,
        ge=0,
        le=100,
        description="UCT exploration weight: higher tries less-visited steps more (mcts; "
        "default 1.0).",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        description="Base seed: every request gets a seed derived from it, the prompt and the "
        "tree path, so a search is repeatable (bit-exact when the server batches the same "
        "way, e.g. concurrency 1; on a CPU sampler concurrency 1 is required).",
    )


def search_rules() -> list[dict[str, str]]:
    """CEL rules of the sampler section about strategy and search (they need both fields)."""
    only = [
        ("beamWidth", "beam", "beam"),
        ("subtrees", "dvts", "dvts"),
        ("explorationConstant", "mcts", "mcts"),
    ]
    step_only = "self.strategy in ['beam', 'dvts', 'mcts']"
    return [
        cel(
            "self.strategy == 'sample' || (has(self.search) && has(self.search.prm))",
            "sampler.search.prm is required when sampler.strategy is not sample; name the "
            "reward in rewards[] that scores partial solutions (e.g. a type: steps or type: prm "
            "reward)",
            ".search",
        ),
        cel(
            "!has(self.search) || self.strategy != 'sample'",
            "sampler.search is only used by strategies bestOfN, beam, dvts and mcts; remove it "
            "or set sampler.strategy",
            ".search",
        ),
        *(
            cel(
                f"!has(self.search) || !has(self.search.{field}) || self.strategy == '{strategy}'",
                f"sampler.search.{field} is only used by strategy {label}; remove it or set "
                f"sampler.strategy: {strategy}",
                f".search.{field}",
            )
            for field, strategy, label in only
        ),
        cel(
            f"!has(self.search) || !has(self.search.maxDepth) || {step_only}",
            "sampler.search.maxDepth is only used by the step-level strategies beam, dvts and "
            "mcts; remove it or change sampler.strategy",
            ".search.maxDepth",
        ),
        cel(
            "!has(self.search) || !has(self.search.completionBudget) || "
            "self.search.completionBudget >= self.samplesPerPrompt",
            "sampler.search.completionBudget must be at least sampler.samplesPerPrompt (the "
            "candidates each prompt returns); raise completionBudget or lower samplesPerPrompt",
            ".search.completionBudget",
        ),
        cel(
            "!has(self.search) || !has(self.search.seed) || self.gpusPerReplica > 0 || "
            "self.concurrency == 1",
            "sampler.search.seed on a CPU sampler (gpusPerReplica: 0) needs sampler.concurrency: "
            "1 (vLLM's CPU sampler crashes on a seeded request whose prompt is processed in "
            "chunks alongside others); set concurrency: 1 or remove seed",
            ".search.seed",
        ),
        cel(
            "self.strategy == 'sample' || self.temperature > 0.0",
            "sampler.temperature must be > 0 for a search strategy (greedy continuations are "
            "all the same); set temperature: 1.0 or strategy: sample",
            ".temperature",
        ),
    ]

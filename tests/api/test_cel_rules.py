"""Every CEL rule of the CRD, evaluated with cel-python on an object it accepts and one it
rejects (with its own message). A rule without a case here fails the coverage test."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rft_operator.schema_walk import apply_defaults, check_rules, iter_rules
from rft_operator.validation import openapi_schema

from ..conftest import ROOT, load_yaml

Manifest = dict[str, Any]


def schema() -> dict[str, Any]:
    return openapi_schema()


def all_rules() -> list[dict[str, str]]:
    """Every rule in the schema, found by walking it (not by looking at the examples)."""
    found: list[dict[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        found.extend(node.get("x-kubernetes-validations", []))
        for sub in node.get("properties", {}).values():
            walk(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    walk(schema())
    return found


@dataclass
class Case:
    """`valid` and `invalid` edit a copy of examples/complete.yaml."""

    rule_contains: str
    valid: Callable[[Manifest], None]
    invalid: Callable[[Manifest], None]


def spec_of(m: Manifest) -> Manifest:
    spec: Manifest = m["spec"]
    return spec


def set_in(path: str, value: Any) -> Callable[[Manifest], None]:
    def edit(m: Manifest) -> None:
        node: Any = m
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value

    return edit


def both(*edits: Callable[[Manifest], None]) -> Callable[[Manifest], None]:
    def edit(m: Manifest) -> None:
        for e in edits:
            e(m)

    return edit


DELETE = object()
NOTHING: Callable[[Manifest], None] = both()
# the complete example (a DPO run with a teacher) turned into a valid GRPO run
GRPO = (
    set_in("spec.training.method", "grpo"),
    set_in("spec.filter.rejected", "none"),
    set_in("spec.sampler.teacher", DELETE),
)

CASES = [
    Case(
        "size(self.metadata.name) <=",
        set_in("metadata.name", "a" * 40),
        set_in("metadata.name", "a" * 41),
    ),
    Case(
        "self.metadata.name.matches",
        set_in("metadata.name", "run-1"),
        set_in("metadata.name", "1run"),
    ),
    Case(
        "self.promptTemplate.contains",
        set_in("spec.data.promptTemplate", "Q: {prompt}"),
        set_in("spec.data.promptTemplate", "Q: {question}"),
    ),
    Case(
        "self.promptsPerIteration <= self.maxPrompts",
        set_in("spec.data.promptsPerIteration", 5000),
        set_in("spec.data.promptsPerIteration", 5001),
    ),
    Case(
        "self.template.contains('{answer}')",
        set_in("spec.sampler.rationalize.template", "{prompt} (answer: {answer})"),
        set_in("spec.sampler.rationalize.template", "{prompt} (think again)"),
    ),
    Case(
        "has(self.model) && size(self.model) > 0",
        NOTHING,
        set_in("spec.sampler.teacher.model", DELETE),
    ),
    Case(
        "self.tensorParallelSize == 1 ||",
        both(
            set_in("spec.sampler.gpusPerReplica", 4), set_in("spec.sampler.tensorParallelSize", 4)
        ),
        both(
            set_in("spec.sampler.gpusPerReplica", 4), set_in("spec.sampler.tensorParallelSize", 2)
        ),
    ),
    Case(
        "self.type != 'regex' || has(self.pattern)",
        NOTHING,
        set_in("spec.rewards.1.pattern", DELETE),
    ),
    Case(
        "!has(self.pattern) || self.type == 'regex'", NOTHING, set_in("spec.rewards.0.pattern", "x")
    ),
    Case(
        "self.type != 'python' || has(self.source)",
        NOTHING,
        set_in("spec.rewards.3.source", DELETE),
    ),
    Case(
        "!has(self.source) || self.type == 'python'",
        NOTHING,
        set_in("spec.rewards.0.source", "def reward(p, c, a): return 1.0"),
    ),
    Case(
        "!has(self.tolerance) || self.type == 'numeric'",
        NOTHING,
        set_in("spec.rewards.0.tolerance", 0.1),
    ),
    Case(
        "self.type != 'judge' || has(self.judge)",
        both(
            set_in("spec.rewards.0.type", "judge"),
            set_in("spec.rewards.0.judge", {"url": "http://judge:8000/v1", "model": "m"}),
        ),
        set_in("spec.rewards.0.type", "judge"),
    ),
    Case(
        "!has(self.judge) || self.type == 'judge'",
        NOTHING,
        set_in("spec.rewards.0.judge", {"url": "http://judge:8000/v1", "model": "m"}),
    ),
    Case(
        "!(self.type in ['orm', 'prm']) || has(self.model)",
        both(set_in("spec.rewards.0.type", "orm"), set_in("spec.rewards.0.model", "pvc://rm/orm")),
        set_in("spec.rewards.0.type", "orm"),
    ),
    Case(
        "!has(self.model) || self.type in",
        set_in("spec.rewards.0.type", "embedding"),
        set_in("spec.rewards.0.model", "file:///models/rm"),
    ),
    Case(
        "(!has(self.stepSeparator) && !has(self.aggregate))",
        both(
            set_in("spec.rewards.0.type", "prm"),
            set_in("spec.rewards.0.model", "pvc://rm/prm"),
            set_in("spec.rewards.0.stepSeparator", "\n"),
            set_in("spec.rewards.0.aggregate", "mean"),
        ),
        set_in("spec.rewards.0.aggregate", "last"),
    ),
    Case(
        "!has(self.ignoreCase)",
        both(set_in("spec.rewards.0.type", "contains"), set_in("spec.rewards.0.ignoreCase", True)),
        set_in("spec.rewards.0.ignoreCase", True),
    ),
    Case(
        "!has(self.code) || self.type == 'code'",
        both(set_in("spec.rewards.0.type", "code"), set_in("spec.rewards.0.code", {})),
        set_in("spec.rewards.0.code", {"timeoutSeconds": 5}),
    ),
    Case(
        "self.length.minChars <= self.length.maxChars",
        set_in("spec.filter.length", {"minChars": 1, "maxChars": 10}),
        set_in("spec.filter.length", {"minChars": 10, "maxChars": 1}),
    ),
    Case(
        "self.length.minWords <= self.length.maxWords",
        set_in("spec.filter.length", {"minWords": 2, "maxWords": 2, "maxChars": 5}),
        set_in("spec.filter.length", {"minWords": 3, "maxWords": 2}),
    ),
    Case(
        "!self.offloadParams || self.zeroStage == 3",
        NOTHING,
        set_in("spec.training.deepspeed.zeroStage", 2),
    ),
    Case(
        "!self.offloadOptimizer || self.zeroStage >= 1",
        both(
            set_in("spec.training.deepspeed.offloadParams", False),
            set_in("spec.training.deepspeed.zeroStage", 1),
        ),
        both(
            set_in("spec.training.deepspeed.offloadParams", False),
            set_in("spec.training.deepspeed.zeroStage", 0),
        ),
    ),
    Case(
        "self.mode == 'lora' || !has(self.lora)",
        both(set_in("spec.training.mode", "full"), set_in("spec.training.lora", DELETE)),
        set_in("spec.training.mode", "full"),
    ),
    Case(
        "!self.resumeOptimizer || self.initFrom == 'previous'",
        both(
            set_in("spec.training.initFrom", "base"), set_in("spec.training.resumeOptimizer", False)
        ),
        both(
            set_in("spec.training.mode", "full"),
            set_in("spec.training.lora", DELETE),
            set_in("spec.training.resumeOptimizer", True),
            set_in("spec.training.initFrom", "base"),
        ),
    ),
    Case(
        "!self.resumeOptimizer || self.mode == 'full'",
        both(
            set_in("spec.training.mode", "full"),
            set_in("spec.training.lora", DELETE),
            set_in("spec.training.resumeOptimizer", True),
        ),
        set_in("spec.training.resumeOptimizer", True),
    ),
    Case(
        "self.evaluateBase || self.sets.all(s, !has(s.maxDrop))",
        NOTHING,
        set_in("spec.evaluation.evaluateBase", False),
    ),
    Case(
        "!has(self.patience) || self.patience < self.max",
        set_in("spec.iterations.patience", 2),
        set_in("spec.iterations.patience", 3),
    ),
    Case(
        "(!has(self.batchSize) && !has(self.maxLength))",
        both(set_in("spec.rewards.0.type", "embedding"), set_in("spec.rewards.0.batchSize", 8)),
        set_in("spec.rewards.0.maxLength", 512),
    ),
    Case(
        "self.sampler.maxTokens < self.model.maxModelLen",
        set_in("spec.sampler.maxTokens", 4095),
        set_in("spec.sampler.maxTokens", 4096),
    ),
    Case(
        "self.filter.minReward <= (size(self.rewards)",
        both(
            set_in("spec.filter.minRewardSchedule", DELETE),
            set_in("spec.rewards.3.weight", 0),
            set_in("spec.filter.minReward", 1.3),
        ),
        both(
            set_in("spec.filter.minRewardSchedule", DELETE),
            set_in("spec.rewards.3.weight", 0),
            set_in("spec.filter.minReward", 1.31),
        ),
    ),
    Case(
        "self.filter.minRewardSchedule.all(m, m <=",
        set_in("spec.rewards.3.weight", 0),
        both(
            set_in("spec.rewards.3.weight", 0), set_in("spec.filter.minRewardSchedule", [1, 2, 1])
        ),
    ),
    Case(
        "self.filter.rejected == 'none' || self.training.method == 'dpo'",
        NOTHING,
        set_in("spec.training.method", "sft"),
    ),
    Case("!has(self.sets[0].maxDrop)", NOTHING, set_in("spec.evaluation.sets.0.maxDrop", 0.1)),
    Case(
        "self.passAtK.all(k, k <= self.samplesPerPrompt)",
        NOTHING,
        set_in("spec.evaluation.passAtK", [1, 8]),
    ),
    Case(
        "self.samplesPerPrompt == 1 || self.temperature > 0.0",
        both(
            set_in("spec.evaluation.samplesPerPrompt", 1),
            set_in("spec.evaluation.passAtK", [1]),
            set_in("spec.evaluation.temperature", 0),
        ),
        set_in("spec.evaluation.temperature", 0),
    ),
    Case(
        "size(self.filter.minRewardSchedule) == self.iterations.max",
        NOTHING,
        set_in("spec.iterations.max", 4),
    ),
    Case(
        "self.training.method != 'dpo' || self.filter.rejected != 'none'",
        both(set_in("spec.training.method", "sft"), set_in("spec.filter.rejected", "none")),
        set_in("spec.filter.rejected", "none"),
    ),
    Case(
        "has(self.evaluation) ||",
        both(
            set_in("spec.evaluation", DELETE),
            set_in("spec.iterations.stopAtEvalScore", DELETE),
            set_in("spec.iterations.patience", DELETE),
        ),
        set_in("spec.evaluation", DELETE),
    ),
    Case(
        "(self.seccompProfile == 'Localhost') == has(self.localhostProfile)",
        both(
            set_in("spec.runtime.sandbox.seccompProfile", "Localhost"),
            set_in("spec.runtime.sandbox.localhostProfile", "profiles/rft-sandbox.json"),
        ),
        set_in("spec.runtime.sandbox.seccompProfile", "Localhost"),
    ),
    Case(
        "(has(self.search) && has(self.search.prm))",
        both(set_in("spec.sampler.strategy", "beam"), set_in("spec.sampler.search.prm", "close")),
        set_in("spec.sampler.strategy", "beam"),
    ),
    Case(
        "!has(self.search) || self.strategy != 'sample'",
        NOTHING,
        set_in("spec.sampler.search.prm", "close"),
    ),
    Case(
        "has(self.search.beamWidth)",
        both(
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search", {"prm": "close", "beamWidth": 2}),
        ),
        both(
            set_in("spec.sampler.strategy", "dvts"),
            set_in("spec.sampler.search", {"prm": "close", "beamWidth": 2}),
        ),
    ),
    Case(
        "has(self.search.subtrees)",
        both(
            set_in("spec.sampler.strategy", "dvts"),
            set_in("spec.sampler.search", {"prm": "close", "subtrees": 2}),
        ),
        both(
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search", {"prm": "close", "subtrees": 2}),
        ),
    ),
    Case(
        "has(self.search.explorationConstant)",
        both(
            set_in("spec.sampler.strategy", "mcts"),
            set_in("spec.sampler.search", {"prm": "close", "explorationConstant": 2.0}),
        ),
        both(
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search", {"prm": "close", "explorationConstant": 2.0}),
        ),
    ),
    Case(
        "has(self.search.maxDepth)",
        both(
            set_in("spec.sampler.strategy", "mcts"),
            set_in("spec.sampler.search", {"prm": "close", "maxDepth": 4}),
        ),
        both(
            set_in("spec.sampler.strategy", "bestOfN"),
            set_in("spec.sampler.search", {"prm": "close", "maxDepth": 4}),
        ),
    ),
    Case(
        "self.search.completionBudget >= self.samplesPerPrompt",
        both(
            set_in("spec.sampler.strategy", "bestOfN"),
            set_in("spec.sampler.search", {"prm": "close", "completionBudget": 8}),
        ),
        both(
            set_in("spec.sampler.strategy", "bestOfN"),
            set_in("spec.sampler.search", {"prm": "close", "completionBudget": 7}),
        ),
    ),
    Case(
        "self.gpusPerReplica > 0 || self.concurrency == 1",
        both(
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search", {"prm": "close", "seed": 1}),
        ),
        both(
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search", {"prm": "close", "seed": 1}),
            set_in("spec.sampler.gpusPerReplica", 0),
        ),
    ),
    Case(
        "self.strategy == 'sample' || self.temperature > 0.0",
        set_in("spec.sampler.temperature", 0.0),
        both(
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search.prm", "close"),
            set_in("spec.sampler.temperature", 0.0),
        ),
    ),
    Case(
        "!self.adaptive || (self.strategy == 'sample' && self.samplesPerPrompt >= 2)",
        both(set_in("spec.sampler.adaptive", True), set_in("spec.sampler.samplesPerPrompt", 2)),
        both(set_in("spec.sampler.adaptive", True), set_in("spec.sampler.samplesPerPrompt", 1)),
    ),
    Case(
        "self.rewards.exists(r, r.name == self.sampler.search.prm)",
        both(set_in("spec.sampler.strategy", "beam"), set_in("spec.sampler.search.prm", "close")),
        both(set_in("spec.sampler.strategy", "beam"), set_in("spec.sampler.search.prm", "closer")),
    ),
    Case(
        "!has(self.grpo) || self.method == 'grpo'",
        both(*GRPO, set_in("spec.training.grpo", {"groupSize": 4})),
        set_in("spec.training.grpo", {"groupSize": 4}),
    ),
    Case(
        "self.training.method != 'grpo' || self.sampler.keepAlive",
        both(*GRPO),
        both(*GRPO, set_in("spec.sampler.keepAlive", False)),
    ),
    Case(
        "self.training.method != 'grpo' || self.sampler.strategy == 'sample'",
        both(*GRPO, set_in("spec.sampler.strategy", "sample")),
        both(
            *GRPO,
            set_in("spec.sampler.strategy", "beam"),
            set_in("spec.sampler.search.prm", "close"),
        ),
    ),
    Case(
        "self.training.method != 'grpo' || !has(self.sampler.teacher)",
        both(*GRPO),
        both(*GRPO[:2]),
    ),
    Case(
        "self.training.method != 'grpo' || (has(self.sampler.temperatureSchedule)",
        both(*GRPO, set_in("spec.sampler.temperatureSchedule", DELETE)),
        both(*GRPO, set_in("spec.sampler.temperatureSchedule", [1.0, 0.0])),
    ),
    Case(
        "self.training.grpo.maxCompletionTokens < self.model.maxModelLen",
        both(*GRPO, set_in("spec.training.grpo", {"maxCompletionTokens": 4095})),
        both(*GRPO, set_in("spec.training.grpo", {"maxCompletionTokens": 4096})),
    ),
    Case(
        "self.rewards.exists(r, r.weight > 0.0)",
        set_in("spec.rewards.0.weight", 1),
        both(*(set_in(f"spec.rewards.{i}.weight", 0) for i in range(4))),
    ),
]


def test_every_rule_has_exactly_one_case() -> None:
    for entry in all_rules():
        matching = [c for c in CASES if c.rule_contains in entry["rule"]]
        assert len(matching) == 1, f"rule without (or with ambiguous) test case: {entry['rule']}"
    assert len(CASES) == len(all_rules())


def test_every_rule_message_names_a_field_and_a_fix() -> None:
    for entry in all_rules():
        problem, sep, fix = entry["message"].partition("; ")
        assert sep and fix, f"message must read '<problem>; <fix>': {entry['message']}"
        assert any(word in problem for word in ("spec", ".", "[")), entry["message"]


def violations(manifest: Manifest) -> list[tuple[str, str]]:
    defaulted = apply_defaults(schema(), manifest)
    return [(v.rule, v.message) for v in check_rules(schema(), defaulted)]


def test_the_complete_example_passes_every_rule() -> None:
    manifest = load_yaml(ROOT / "examples" / "complete.yaml")
    assert violations(manifest) == []
    reached = {
        entry["rule"] for _, entry, _ in iter_rules(schema(), apply_defaults(schema(), manifest))
    }
    # the complete example exercises every section that carries a rule
    assert reached == {entry["rule"] for entry in all_rules()}


@pytest.mark.parametrize("case", CASES, ids=[c.rule_contains for c in CASES])
def test_rule_accepts_valid_and_rejects_invalid(case: Case, complete: Manifest) -> None:
    rule = next(e for e in all_rules() if case.rule_contains in e["rule"])
    valid = copy.deepcopy(complete)
    case.valid(valid)
    assert violations(valid) == []
    invalid = copy.deepcopy(complete)
    case.invalid(invalid)
    assert violations(invalid) == [(rule["rule"], rule["message"])]

"""Sixty-odd bad manifests, each a named case: `rft validate` rejects it naming the field,
the problem and the fix; the API server (the checked-in CRD, judged by `crd_check`) rejects
every one it can judge. No input, however broken, gives a traceback."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from click.testing import CliRunner

from rft_operator.cli import main

from .crd_check import crd_errors

DELETE = object()
BASE: dict[str, Any] = {
    "apiVersion": "rft.dev/v1alpha1",
    "kind": "RFTRun",
    "metadata": {"name": "bad-run"},
    "spec": {
        "model": {"uri": "pvc://models/m"},
        "data": {"train": "pvc://data/train.jsonl"},
        "evaluation": {"sets": [{"name": "main", "uri": "pvc://data/eval.jsonl"}]},
    },
}
PY = "def reward(prompt, completion, answer):\n    return 1.0\n"


class Case(NamedTuple):
    id: str
    edits: dict[str, Any]  # dotted path (from the document root) -> value, or DELETE
    path: str  # the field `rft validate` must name
    message: str  # fragment of the problem
    fix: str  # fragment of the fix
    server: bool = True  # the API server rejects it too (False: only the semantic checks)


def R(**fields: Any) -> dict[str, Any]:  # a reward
    return {"name": "r", "type": "math", **fields}


CASES = [
    # -- strict types: the API server never coerces
    Case(
        "bool-as-string",
        {"spec.suspend": "yes"},
        "spec.suspend",
        "expected true or false",
        "without quotes",
    ),
    Case(
        "bool-as-int",
        {"spec.model.useChatTemplate": 1},
        "spec.model.useChatTemplate",
        "expected true or false",
        "true or false",
    ),
    Case(
        "int-as-string",
        {"spec.iterations.max": "3"},
        "spec.iterations.max",
        "expected an integer",
        "whole number",
    ),
    Case(
        "int-as-float",
        {"spec.sampler.replicas": 1.5},
        "spec.sampler.replicas",
        "expected an integer",
        "whole number",
    ),
    Case(
        "int-as-bool",
        {"spec.sampler.samplesPerPrompt": True},
        "spec.sampler.samplesPerPrompt",
        "expected an integer",
        "whole number",
    ),
    Case(
        "number-as-string",
        {"spec.sampler.temperature": "0.7"},
        "spec.sampler.temperature",
        "expected a number",
        "without quotes",
    ),
    Case(
        "string-as-int",
        {"spec.data.promptField": 7},
        "spec.data.promptField",
        "expected a string",
        "quote",
    ),
    Case(
        "object-as-string",
        {"spec.training": "sft"},
        "spec.training",
        "expected a mapping",
        "object with fields",
    ),
    Case(
        "list-as-string", {"spec.rewards": "math"}, "spec.rewards", "expected a list", "YAML list"
    ),
    Case(
        "node-selector-int",
        {"spec.runtime.nodeSelector": {"gpu": 1}},
        "spec.runtime.nodeSelector.gpu",
        "expected a string",
        "quote",
    ),
    # -- quantities
    Case(
        "quantity-words",
        {"spec.runtime.resources": {"requests": {"cpu": "2 cores"}}},
        "spec.runtime.resources.requests.cpu",
        "'2 cores' is not valid",
        "Kubernetes quantity",
    ),
    Case(
        "quantity-float",
        {"spec.runtime.resources": {"limits": {"memory": 0.5}}},
        "spec.runtime.resources.limits.memory",
        "integer or a string",
        "'500m'",
    ),
    Case(
        "quantity-negative",
        {"spec.training.resources": {"requests": {"cpu": -1}}},
        "spec.training.resources.requests.cpu",
        "at least 0",
        "at least 0",
    ),
    Case(
        "quantity-negative-string",
        {"spec.sampler.resources": {"requests": {"memory": "-4Gi"}}},
        "spec.sampler.resources.requests.memory",
        "is not valid",
        "quantity",
    ),
    Case(
        "quantity-bad-suffix",
        {"spec.sampler.resources": {"limits": {"memory": "4GB"}}},
        "spec.sampler.resources.limits.memory",
        "is not valid",
        "4Gi",
    ),
    Case(
        "request-above-limit",
        {"spec.runtime.resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "4Gi"}}},
        "spec.runtime.resources.requests[memory]",
        "above the limit",
        "raise limits.memory",
        server=False,
    ),
    Case(
        "request-above-limit-cpu",
        {"spec.training.resources": {"requests": {"cpu": 4}, "limits": {"cpu": "1500m"}}},
        "spec.training.resources.requests[cpu]",
        "above the limit",
        "lower requests.cpu",
        server=False,
    ),
    # -- unknown, missing
    Case(
        "unknown-field",
        {"spec.sampler.temprature": 0.7},
        "spec.sampler.temprature",
        "unknown field",
        "did you mean 'temperature'",
    ),
    Case(
        "unknown-top-level",
        {"spec.rewardz": []},
        "spec.rewardz",
        "unknown field",
        "did you mean 'rewards'",
    ),
    Case(
        "unknown-in-list-item",
        {"spec.rewards": [R(wieght=1.0)]},
        "spec.rewards[0].wieght",
        "unknown field",
        "did you mean 'weight'",
    ),
    Case(
        "missing-model",
        {"spec.model": DELETE},
        "spec.model",
        "required field is missing",
        "add 'model'",
    ),
    Case(
        "missing-train",
        {"spec.data.train": DELETE},
        "spec.data.train",
        "required field is missing",
        "add 'train'",
    ),
    Case(
        "missing-reward-type",
        {"spec.rewards": [{"name": "a"}]},
        "spec.rewards[0].type",
        "required field is missing",
        "add 'type'",
    ),
    Case(
        "missing-eval-uri",
        {"spec.evaluation.sets": [{"name": "main"}]},
        "spec.evaluation.sets[0].uri",
        "required field is missing",
        "add 'uri'",
    ),
    # -- ranges and enums
    Case(
        "zero-iterations",
        {"spec.iterations.max": 0},
        "spec.iterations.max",
        "at least 1",
        "at least 1",
    ),
    Case(
        "too-many-iterations",
        {"spec.iterations.max": 101},
        "spec.iterations.max",
        "at most 100",
        "at most 100",
    ),
    Case(
        "negative-lr",
        {"spec.training.learningRate": -0.1},
        "spec.training.learningRate",
        "greater than 0",
        "greater than 0",
    ),
    Case(
        "top-p-zero",
        {"spec.sampler.topP": 0},
        "spec.sampler.topP",
        "greater than 0",
        "greater than 0",
    ),
    Case(
        "score-above-one",
        {"spec.iterations.stopAtEvalScore": 1.5},
        "spec.iterations.stopAtEvalScore",
        "at most 1",
        "at most 1",
    ),
    Case(
        "bad-enum",
        {"spec.training.method": "xyz"},
        "spec.training.method",
        "'xyz' is not one of",
        "use one of",
    ),
    Case(
        "enum-typo",
        {"spec.training.mode": "lorra"},
        "spec.training.mode",
        "is not one of",
        "did you mean 'lora'",
    ),
    Case(
        "bad-language",
        {"spec.filter.language": {"allowed": ["english"]}},
        "spec.filter.language.allowed[0]",
        "is not one of",
        "one of",
    ),
    Case(
        "empty-rewards",
        {"spec.rewards": []},
        "spec.rewards",
        "at least 1 item",
        "number of entries",
    ),
    Case(
        "prompt-too-long",
        {"spec.data.systemPrompt": "x" * 8193},
        "spec.data.systemPrompt",
        "at most 8192 characters",
        "number of entries or characters",
    ),
    # -- names and URIs
    Case(
        "reward-name-uppercase",
        {"spec.rewards": [R(name="Answer")]},
        "spec.rewards[0].name",
        "is not valid",
        "lowercase letters",
    ),
    Case(
        "claim-name-invalid",
        {"spec.model.uri": "pvc://My_Models/m"},
        "spec.model.uri",
        "is not valid",
        "DNS-1123",
    ),
    Case(
        "uri-dotdot",
        {"spec.data.train": "pvc://data/../../etc/passwd"},
        "spec.data.train",
        "is not valid",
        "'..'",
    ),
    Case(
        "uri-dot-segment",
        {"spec.model.uri": "pvc://models/./m"},
        "spec.model.uri",
        "is not valid",
        "'.'",
    ),
    Case(
        "uri-empty-segment",
        {"spec.model.uri": "pvc://models//m"},
        "spec.model.uri",
        "is not valid",
        "empty",
    ),
    Case(
        "uri-no-path",
        {"spec.model.uri": "pvc://models"},
        "spec.model.uri",
        "is not valid",
        "pvc://<claim>/<path>",
    ),
    Case(
        "uri-relative-file",
        {"spec.model.uri": "file://models/m"},
        "spec.model.uri",
        "is not valid",
        "file:///<absolute path>",
    ),
    Case(
        "uri-scheme", {"spec.model.uri": "s3://bucket/m"}, "spec.model.uri", "is not valid", "a URI"
    ),
    Case(
        "eval-uri-dotdot",
        {"spec.evaluation.sets": [{"name": "main", "uri": "pvc://data/a/../../b"}]},
        "spec.evaluation.sets[0].uri",
        "is not valid",
        "'..'",
    ),
    Case(
        "subpath-dotdot",
        {"spec.storage": {"subPath": "../other-team"}},
        "spec.storage.subPath",
        "is not valid",
        "relative path",
    ),
    Case(
        "subpath-absolute",
        {"spec.storage": {"subPath": "/etc"}},
        "spec.storage.subPath",
        "is not valid",
        "relative path",
    ),
    Case(
        "subpath-inner-dotdot",
        {"spec.storage": {"subPath": "team-a/../../x"}},
        "spec.storage.subPath",
        "is not valid",
        "relative path",
    ),
    Case(
        "storage-claim-invalid",
        {"spec.storage": {"pvc": "Runs_PVC"}},
        "spec.storage.pvc",
        "is not valid",
        "lowercase",
    ),
    Case(
        "secret-name-invalid",
        {
            "spec.sampler.teacher": {
                "url": "https://x/v1",
                "model": "m",
                "apiKeySecretRef": {"name": "Key!", "key": "k"},
            }
        },
        "spec.sampler.teacher.apiKeySecretRef.name",
        "is not valid",
        "lowercase",
    ),
    Case(
        "teacher-url-scheme",
        {"spec.sampler.teacher": {"url": "ftp://x", "model": "m"}},
        "spec.sampler.teacher.url",
        "is not valid",
        "https://",
    ),
    Case(
        "run-name-invalid",
        {"metadata.name": "Bad_Run"},
        "metadata.name",
        "DNS-1035 label",
        "rename it",
    ),
    # -- duplicates where names are keys
    Case(
        "duplicate-reward-names",
        {"spec.rewards": [R(name="a"), R(name="a", type="exact")]},
        "spec.rewards[1]",
        "duplicate entry",
        "its own name",
    ),
    Case(
        "duplicate-eval-sets",
        {
            "spec.evaluation.sets": [
                {"name": "main", "uri": "pvc://d/a.jsonl"},
                {"name": "main", "uri": "pvc://d/b.jsonl"},
            ]
        },
        "spec.evaluation.sets[1]",
        "duplicate entry",
        "its own name",
    ),
    Case(
        "duplicate-pass-at-k",
        {"spec.evaluation.passAtK": [1, 1]},
        "spec.evaluation.passAtK[1]",
        "duplicate entry",
        "list each value once",
    ),
    Case(
        "duplicate-languages",
        {"spec.filter.language": {"allowed": ["en", "en"]}},
        "spec.filter.language.allowed[1]",
        "duplicate entry",
        "once",
    ),
    Case(
        "duplicate-target-modules",
        {"spec.training.lora": {"targetModules": ["q_proj", "q_proj"]}},
        "spec.training.lora.targetModules[1]",
        "duplicate entry",
        "once",
    ),
    # -- cross-field rules (CEL)
    Case(
        "search-strategy-unknown",
        {"spec.sampler.strategy": "beamSearch"},
        "spec.sampler.strategy",
        "not one of 'sample', 'bestOfN', 'beam', 'dvts' or 'mcts'",
        "did you mean 'beam'",
    ),
    Case(
        "search-without-prm",
        {"spec.sampler.strategy": "beam"},
        "spec.sampler.search",
        "search.prm is required",
        "name the reward",
    ),
    Case(
        "search-prm-not-a-reward",
        {"spec.sampler.strategy": "dvts", "spec.sampler.search": {"prm": "checker"}},
        "spec.sampler.search.prm",
        "must name a reward",
        "add a reward with that name",
    ),
    Case(
        "search-width-for-dvts",
        {
            "spec.sampler.strategy": "dvts",
            "spec.sampler.search": {"prm": "answer", "beamWidth": 2},
        },
        "spec.sampler.search.beamWidth",
        "only used by strategy beam",
        "remove it",
    ),
    Case(
        "search-budget-below-candidates",
        {
            "spec.sampler.strategy": "bestOfN",
            "spec.sampler.search": {"prm": "answer", "completionBudget": 4},
        },
        "spec.sampler.search.completionBudget",
        "at least sampler.samplesPerPrompt",
        "raise completionBudget",
    ),
    Case(
        "search-seed-on-cpu-concurrently",
        {
            "spec.sampler.strategy": "beam",
            "spec.sampler.search": {"prm": "answer", "seed": 7},
        },
        "spec.sampler.search.seed",
        "needs sampler.concurrency: 1",
        "set concurrency: 1 or remove seed",
    ),
    Case(
        "search-greedy",
        {
            "spec.sampler.strategy": "mcts",
            "spec.sampler.temperature": 0,
            "spec.sampler.search": {"prm": "answer"},
        },
        "spec.sampler.temperature",
        "must be > 0 for a search strategy",
        "set temperature: 1.0",
    ),
    Case(
        "max-tokens-above-context",
        {"spec.sampler.maxTokens": 4096, "spec.model.maxModelLen": 2048},
        "spec.sampler.maxTokens",
        "below model.maxModelLen",
        "lower sampler.maxTokens",
    ),
    Case(
        "max-tokens-equal-context",
        {"spec.sampler.maxTokens": 2048},
        "spec.sampler.maxTokens",
        "below model.maxModelLen",
        "raise model.maxModelLen",
    ),
    Case(
        "min-reward-unreachable",
        {"spec.rewards": [R(weight=0.5)], "spec.filter": {"minReward": 1.0}},
        "spec.filter.minReward",
        "above the highest total reward",
        "lower filter.minReward",
    ),
    Case(
        "min-reward-two-rewards",
        {
            "spec.rewards": [R(name="a", weight=0.5), R(name="b", type="exact", weight=0.3)],
            "spec.filter": {"minReward": 0.9},
        },
        "spec.filter.minReward",
        "above the highest total reward",
        "raise the weights",
    ),
    Case(
        "schedule-unreachable",
        {"spec.iterations.max": 2, "spec.filter": {"minRewardSchedule": [1.0, 1.5]}},
        "spec.filter.minRewardSchedule",
        "above the highest total reward",
        "lower it",
    ),
    Case(
        "max-drop-without-baseline",
        {
            "spec.evaluation": {
                "evaluateBase": False,
                "sets": [
                    {"name": "main", "uri": "pvc://d/a.jsonl"},
                    {"name": "guard", "uri": "pvc://d/b.jsonl", "maxDrop": 0.05},
                ],
            }
        },
        "spec.evaluation.evaluateBase",
        "can never trip",
        "set evaluateBase: true",
    ),
    Case(
        "resume-optimizer-lora",
        {"spec.training": {"resumeOptimizer": True}},
        "spec.training.resumeOptimizer",
        "does nothing with training.mode lora",
        "set mode: full",
    ),
    Case(
        "rejected-without-dpo",
        {"spec.filter": {"rejected": "lowest"}},
        "spec.filter.rejected",
        "only used by training.method dpo",
        "set method: dpo",
    ),
    Case(
        "patience-never-trips",
        {"spec.iterations": {"max": 3, "patience": 3}},
        "spec.iterations.patience",
        "below iterations.max",
        "lower patience",
    ),
    Case(
        "batch-size-on-rule-reward",
        {"spec.rewards": [R(batchSize=8)]},
        "spec.rewards[0].batchSize",
        "only used by types orm, prm and embedding",
        "change type",
    ),
    Case(
        "dpo-without-rejected",
        {"spec.training": {"method": "dpo"}},
        "spec.filter.rejected",
        "needs rejected samples",
        "set filter.rejected: lowest",
    ),
    Case(
        "grpo-without-keep-alive",
        {"spec.training": {"method": "grpo"}, "spec.sampler": {"keepAlive": False}},
        "spec.sampler.keepAlive",
        "training.method grpo needs sampler.keepAlive: true",
        "set sampler.keepAlive: true",
    ),
    Case(
        "grpo-section-without-grpo",
        {"spec.training": {"grpo": {"groupSize": 4}}},
        "spec.training.grpo",
        "only used with training.method grpo",
        "set method: grpo",
    ),
    Case(
        "grpo-group-of-one",
        {"spec.training": {"method": "grpo", "grpo": {"groupSize": 1}}},
        "spec.training.grpo.groupSize",
        "must be at least 2, got 1",
        "use a value at least 2",
    ),
    Case(
        "regex-without-pattern",
        {"spec.rewards": [R(type="regex")]},
        "spec.rewards[0].pattern",
        "required when type is regex",
        "add pattern",
    ),
    Case(
        "pass-at-k-above-samples",
        {"spec.evaluation.passAtK": [1, 4]},
        "spec.evaluation.passAtK",
        "must not exceed",
        "raise samplesPerPrompt",
    ),
    Case(
        "no-positive-weight",
        {"spec.rewards": [R(weight=0.0)]},
        "spec.rewards",
        "positive weight",
        "set weight: 1.0",
    ),
    # -- what only the operator-side checks can judge (no pod would start)
    Case(
        "regex-does-not-compile",
        {"spec.rewards": [R(type="regex", pattern="(unclosed")]},
        "spec.rewards[0].pattern",
        "does not compile",
        "fix the pattern",
        server=False,
    ),
    Case(
        "regex-bad-escape",
        {"spec.rewards": [R(type="regex", pattern="\\boxed{\\q}")]},
        "spec.rewards[0].pattern",
        "does not compile",
        "single-quote",
        server=False,
    ),
    Case(
        "python-syntax-error",
        {
            "spec.rewards": [
                R(type="python", source="def reward(prompt, completion, answer)\n    return 1\n")
            ]
        },
        "spec.rewards[0].source",
        "does not parse (line 1)",
        "fix the Python syntax",
        server=False,
    ),
    Case(
        "python-no-reward-function",
        {"spec.rewards": [R(type="python", source="def score(p, c, a):\n    return 1.0\n")]},
        "spec.rewards[0].source",
        "no top-level function named reward",
        "add def reward",
        server=False,
    ),
    Case(
        "python-wrong-arity",
        {"spec.rewards": [R(type="python", source="def reward(completion):\n    return 1.0\n")]},
        "spec.rewards[0].source",
        "three positional arguments",
        "def reward(prompt, completion, answer)",
        server=False,
    ),
    Case(
        "python-async",
        {"spec.rewards": [R(type="python", source="async def reward(p, c, a):\n    return 1.0\n")]},
        "spec.rewards[0].source",
        "async",
        "without async",
        server=False,
    ),
    Case(
        "python-return-outside",
        {"spec.rewards": [R(type="python", source="return 1.0\n")]},
        "spec.rewards[0].source",
        "does not parse",
        "fix the Python syntax",
        server=False,
    ),
]


def build(edits: dict[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(BASE)
    for dotted, value in edits.items():
        node: Any = manifest
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return manifest


def validate(tmp_path: Path, content: bytes, *options: str) -> tuple[int, str]:
    file = tmp_path / "run.yaml"
    file.write_bytes(content)
    result = CliRunner().invoke(main, ["validate", *options, str(file)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_there_are_at_least_sixty_cases_with_unique_ids() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_base_manifest_is_valid(tmp_path: Path) -> None:
    code, output = validate(tmp_path, yaml.safe_dump(BASE).encode())
    assert code == 0, output
    assert crd_errors(BASE) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_manifest_is_rejected_with_field_and_fix(tmp_path: Path, case: Case) -> None:
    manifest = build(case.edits)
    code, output = validate(tmp_path, yaml.safe_dump(manifest).encode())
    assert code == 1, output
    lines = output.splitlines()
    at = [i for i, line in enumerate(lines) if line.strip().startswith(case.path + ":")]
    assert at, f"{case.path} not named:\n{output}"
    line = lines[at[0]]
    assert case.message in line, output
    assert lines[at[0] + 1].strip().startswith("fix:") and case.fix in lines[at[0] + 1], output
    assert bool(crd_errors(manifest)) == case.server  # the API server's verdict


GARBAGE = [
    ("binary", bytes(range(256)) * 4, "not UTF-8"),
    ("nul-bytes", b"spec: \x00\x00\n", "NUL"),
    ("empty", b"", "no YAML documents"),
    ("only-comments", b"# nothing here\n---\n", "no YAML documents"),
    ("not-yaml", b"spec: [unclosed\n", "not valid YAML"),
    ("tab-indent", b"spec:\n\tmodel: x\n", "not valid YAML"),
    (
        "duplicate-key",
        b"apiVersion: rft.dev/v1alpha1\nkind: RFTRun\nkind: RFTRun\n",
        "duplicate key 'kind'",
    ),
    ("scalar-document", b"42\n", "the document is not a mapping"),
    ("list-document", b"- a\n- b\n", "the document is not a mapping"),
    (
        "wrong-kind",
        b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
        "set kind: RFTRun",
    ),
    (
        "spec-is-list",
        b"apiVersion: rft.dev/v1alpha1\nkind: RFTRun\nmetadata: {name: x}\nspec: [1]\n",
        "expected a mapping",
    ),
    (
        "metadata-is-string",
        b"apiVersion: rft.dev/v1alpha1\nkind: RFTRun\nmetadata: x\nspec: {}\n",
        "metadata.name",
    ),
    ("deep-nesting", b"spec: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    ("complex-key", b"? [a, b]\n: c\n", "not valid YAML"),
    ("utf16", "kind: RFTRun\n".encode("utf-16"), "not UTF-8"),
]


@pytest.mark.parametrize(
    ("content", "expected"), [g[1:] for g in GARBAGE], ids=[g[0] for g in GARBAGE]
)
def test_any_input_gives_a_clear_message_and_no_traceback(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    code, output = validate(tmp_path, content)
    assert code == 1
    assert "Traceback" not in output
    assert expected in output, output

"""`rft validate` and the API server agree on every manifest of a generated corpus: the
examples, and mutations of every field they hold (wrong type, out of range, too long,
pattern, enum, null, missing, unknown, duplicate, empty and overfull lists). The API
server's side is `crd_check`: the checked-in CRD judged by jsonschema + cel-python."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import pytest

from rft_operator.validation import admission_problems, problems_in

from ..conftest import ROOT, load_yaml
from .crd_check import _defaulted, crd_errors, crd_schema

Path_ = tuple[str | int, ...]
EXAMPLES = ["minimal.yaml", "arith-smollm2.yaml", "complete.yaml"]
SKIP = {"apiVersion", "kind", "metadata", "status"}  # routed / owned by the API server


def _wrong_types(node: dict[str, Any]) -> list[Any]:
    if node.get("x-kubernetes-int-or-string"):
        return [0.5, True, ["1"]]
    return {
        "string": [7, True, ["x"]],
        "integer": ["7", 7.5, True],
        "number": ["0.5", True],
        "boolean": ["yes", "true", 1],
        "object": ["x", ["x"]],
        "array": ["x", {"a": 1}],
    }.get(node.get("type", ""), [])


def _edits(node: dict[str, Any], value: Any) -> Iterator[tuple[str, Any]]:
    """(label, replacement value) for one field; DELETE removes it."""
    for bad in _wrong_types(node):
        yield f"type {bad!r}", bad
    yield "null", None
    if "enum" in node:
        yield "enum", "bogus"
    if "pattern" in node:
        yield "pattern", "Bad Value/../x"
        yield "pattern dotdot", "pvc://data/../../etc/passwd"
    if "minimum" in node:
        low = node["minimum"]
        yield "below minimum", low if node.get("exclusiveMinimum") else low - 1
    if "maximum" in node:
        high = node["maximum"]
        yield "above maximum", high if node.get("exclusiveMaximum") else high + 1
    if "maxLength" in node:
        yield "too long", "a" * (node["maxLength"] + 1)
    if "minLength" in node:
        yield "too short", ""
    if isinstance(value, dict) and "properties" in node:
        yield "unknown field", {**value, "notAField": 1}
        for name in node.get("required", []):
            yield f"missing {name}", {k: v for k, v in value.items() if k != name}
    if isinstance(value, list) and value:
        if node.get("minItems"):
            yield "empty", []
        yield "duplicate", [*value, copy.deepcopy(value[0])]
        if "maxItems" in node:
            yield (
                "too many",
                [copy.deepcopy(value[i % len(value)]) for i in range(node["maxItems"] + 1)],
            )


def _walk(node: dict[str, Any], value: Any, path: Path_) -> Iterator[tuple[Path_, str, Any]]:
    if path:
        for label, bad in _edits(node, value):
            yield path, label, bad
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, sub in value.items():
            if not path and key in SKIP:
                continue
            child = props.get(key, extra if isinstance(extra, dict) else None)
            if child is not None:
                yield from _walk(child, sub, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:2]):
            yield from _walk(node.get("items", {}), item, (*path, index))


def _replaced(manifest: Any, path: Path_, bad: Any) -> Any:
    out = copy.deepcopy(manifest)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = bad
    return out


def corpus() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = []
    for example in EXAMPLES:
        raw = load_yaml(ROOT / "examples" / example)
        cases.append((example, raw))
        full = _defaulted(crd_schema(), raw)
        for path, label, bad in _walk(crd_schema(), full, ()):
            where = ".".join(map(str, path))
            cases.append((f"{example}:{where}:{label}", _replaced(full, path, bad)))
    return cases


@lru_cache(maxsize=1)
def judged() -> list[tuple[str, Any, list[str]]]:
    """(name, manifest, what the API server would say) for the whole corpus, once."""
    return [(name, manifest, crd_errors(manifest)) for name, manifest in corpus()]


def test_corpus_is_large_and_mixed() -> None:
    rejected = [bool(server) for _, _, server in judged()]
    assert len(rejected) > 1000
    assert 100 < rejected.count(False) < rejected.count(True)  # both verdicts well represented


@pytest.mark.parametrize("example", EXAMPLES)
def test_rft_validate_and_the_crd_agree_on_every_mutation(example: str) -> None:
    disagreements = []
    for name, manifest, server in judged():
        if not name.startswith(example):
            continue
        ours = admission_problems(manifest)
        if bool(server) != bool(ours):
            disagreements.append(f"{name}: server={server[:2]} rft={[p.path for p in ours][:2]}")
        elif server:
            assert problems_in(manifest), name  # what admission rejects, validate rejects
    assert disagreements == []

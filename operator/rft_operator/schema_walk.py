"""Offline stand-ins for two things the API server does with a structural schema:
apply `default`s, and evaluate `x-kubernetes-validations` CEL rules (with cel-python).

`rft validate` and the tests use them so that a manifest is judged offline exactly as the
API server would judge it at admission.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import celpy


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Return a copy of `value` with schema defaults filled in, parents before children."""
    value = copy.deepcopy(value)
    _default_in_place(schema, value)
    return value


def _default_in_place(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default_in_place(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                _default_in_place(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_in_place(schema["items"], item)


def typed(schema: dict[str, Any], value: Any) -> Any:
    """Coerce JSON numbers to the schema's type, as the API server does before CEL sees them
    (a YAML `1` in a `type: number` field is a double in CEL, not an int)."""
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        fallback: dict[str, Any] = extra if isinstance(extra, dict) else {}
        return {k: typed(props.get(k, fallback), v) for k, v in value.items()}
    if isinstance(value, list):
        items: dict[str, Any] = schema["items"] if isinstance(schema.get("items"), dict) else {}
        return [typed(items, v) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclass(frozen=True)
class RuleViolation:
    """A CEL rule that evaluated to false (or could not be evaluated)."""

    path: str
    rule: str
    message: str


def _join(path: str, field_path: str) -> str:
    suffix = field_path.lstrip(".")
    if not suffix:
        return path
    return f"{path}.{suffix}" if path else suffix


_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def evaluate_rule(rule: str, self_value: Any) -> bool:
    """Evaluate one CEL rule with `self` bound to `self_value` (plain JSON)."""
    program = _PROGRAMS.get(rule)
    if program is None:
        program = _ENV.program(_ENV.compile(rule))
        _PROGRAMS[rule] = program
    activation = {"self": celpy.json_to_cel(self_value)}  # type: ignore[attr-defined]
    result = program.evaluate(activation)
    if isinstance(result, Exception):
        raise result
    return bool(result)


def iter_rules(
    schema: dict[str, Any], value: Any, path: str = ""
) -> Iterator[tuple[str, dict[str, str], Any]]:
    """Yield (path, rule entry, self value) for every rule that applies to `value`."""
    for entry in schema.get("x-kubernetes-validations", []):
        yield path, entry, value
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from iter_rules(sub, value[name], _join(path, name))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                yield from iter_rules(extra, item, f"{path}[{key}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from iter_rules(schema["items"], item, f"{path}[{index}]")


def check_rules(schema: dict[str, Any], value: Any) -> list[RuleViolation]:
    """Every CEL rule of `schema` that `value` breaks (value must already carry defaults)."""
    violations = []
    for path, entry, self_value in iter_rules(schema, typed(schema, value)):
        try:
            ok = evaluate_rule(entry["rule"], self_value)
        except Exception as error:  # a rule that cannot evaluate is a rejection, as in k8s
            violations.append(
                RuleViolation(path, entry["rule"], f"{entry['message']} (rule error: {error})")
            )
            continue
        if not ok:
            violations.append(
                RuleViolation(
                    _join(path, entry.get("fieldPath", "")), entry["rule"], entry["message"]
                )
            )
    return violations


def prune_nulls(value: Any) -> Any:
    """Drop `null` object fields, as the API server does before defaulting (a structural
    schema field that is not `nullable` treats null as absent)."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(v) for v in value]
    return value


def list_type_violations(schema: dict[str, Any], value: Any, path: str = "") -> list[RuleViolation]:
    """Duplicates in lists declared `x-kubernetes-list-type: set` or `map` (by their keys),
    which the API server rejects as 'Duplicate value'."""
    found: list[RuleViolation] = []
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += list_type_violations(sub, value[name], _join(path, name))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        kind = schema.get("x-kubernetes-list-type")
        keys: list[str] = schema.get("x-kubernetes-list-map-keys", [])
        seen: dict[Any, int] = {}
        for index, item in enumerate(value):
            if kind == "map" and isinstance(item, dict):
                key: Any = tuple(repr(item.get(k)) for k in keys)
                shown = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
            elif kind == "set":
                key, shown = repr(item), repr(item)
            else:
                found += list_type_violations(schema["items"], item, f"{path}[{index}]")
                continue
            if key in seen:
                found.append(
                    RuleViolation(
                        f"{path}[{index}]",
                        f"x-kubernetes-list-type: {kind}",
                        f"duplicate entry ({shown}, same as [{seen[key]}]); "
                        + (
                            "give each entry its own " + "/".join(keys)
                            if kind == "map"
                            else "list each value once"
                        ),
                    )
                )
            else:
                seen[key] = index
            found += list_type_violations(schema["items"], item, f"{path}[{index}]")
    return found

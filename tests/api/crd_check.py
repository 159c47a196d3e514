"""An independent judge of an RFTRun object: what the API server would do with the CRD as
checked in under crds/, written without the operator's code (no pydantic, no schema_walk).

Steps, as in the API server: drop null fields, validate the structural schema (JSON-schema
Draft 4 with unknown fields rejected, as kubectl's strict field validation does, and
`x-kubernetes-int-or-string` as integer-or-string), reject duplicates in list-type set/map
lists, apply defaults, then evaluate every `x-kubernetes-validations` rule with cel-python.
"""

from __future__ import annotations

import copy
from functools import cache, lru_cache
from typing import Any

import celpy
import jsonschema

from ..conftest import ROOT, load_yaml


@lru_cache(maxsize=1)
def crd_schema() -> dict[str, Any]:
    crd = load_yaml(ROOT / "crds" / "rftruns.rft.dev.yaml")
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _closed(node: Any) -> Any:
    """The schema with unknown fields rejected and int-or-string typed, for jsonschema."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    return out


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft4Validator:
    schema = _closed(crd_schema())
    schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: the server's own
    return jsonschema.Draft4Validator(schema)


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


def _duplicates(node: dict[str, Any], value: Any, path: str) -> list[str]:
    found = []
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                found += _duplicates(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list):
        kind = node.get("x-kubernetes-list-type")
        keys = node.get("x-kubernetes-list-map-keys", [])
        seen = []
        for index, item in enumerate(value):
            key = [item.get(k) for k in keys] if kind == "map" else item
            if kind in ("map", "set") and key in seen:
                found.append(f"{path}[{index}]: Duplicate value")
            seen.append(key)
            found += _duplicates(node.get("items", {}), item, f"{path}[{index}]")
    return found


def _defaulted(node: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        out = dict(value)
        for name, sub in node.get("properties", {}).items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _defaulted(sub, out[name])
        return out
    if isinstance(value, list):
        return [_defaulted(node.get("items", {}), v) for v in value]
    return value


def _as_declared(node: dict[str, Any], value: Any) -> Any:
    """JSON numbers as the schema declares them (`type: number` is a CEL double)."""
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        return {
            k: _as_declared(props.get(k, extra if isinstance(extra, dict) else {}), v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_as_declared(node.get("items", {}), v) for v in value]
    if node.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


_CEL = celpy.Environment()


@cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def _rules(node: dict[str, Any], value: Any, path: str) -> list[str]:
    found = []
    for entry in node.get("x-kubernetes-validations", []):
        try:
            result = _program(entry["rule"]).evaluate({"self": celpy.json_to_cel(value)})  # type: ignore[attr-defined]
        except Exception as error:  # a rule that cannot evaluate rejects, as in the API server
            result = error
        if isinstance(result, Exception) or not bool(result):
            found.append(f"{path}: {entry['message']}")
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                found += _rules(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _rules(node.get("items", {}), item, f"{path}[{index}]")
    return found


def crd_errors(manifest: Any) -> list[str]:
    """What the API server would say about `manifest` (empty: admitted)."""
    if not isinstance(manifest, dict):
        return ["not an object"]
    obj = _no_nulls({k: v for k, v in manifest.items() if k != "status"})
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(obj)
    ]
    if not isinstance(obj.get("metadata", {}).get("name"), str):
        errors.append("metadata.name: Required value")
    if errors:
        return errors
    errors = _duplicates(crd_schema(), obj, "")  # lists are well-typed from here on
    if errors:
        return errors
    schema = crd_schema()
    return _rules(schema, _as_declared(schema, _defaulted(schema, obj)), "")

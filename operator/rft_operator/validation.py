"""`rft validate`: judge a manifest offline as admission would, and explain every problem.

Order of checks mirrors the API server: null fields pruned, the structural schema (types,
required fields, ranges, patterns, unknown fields) via the pydantic models the CRD is
generated from in strict mode (no "yes" for a boolean, no "2" for an integer), duplicates
in `x-kubernetes-list-type` map/set lists, defaults, every CEL rule of the CRD evaluated with
cel-python; then what no CEL rule can judge (`semantics`), which the operator checks again
before it starts any pod.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rft_runtime.config.spec import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    RELATIVE_PATH_PATTERN,
    URI_HELP,
    URI_PATTERN,
)

from . import api
from .api.sections import QUANTITY_PATTERN
from .crd import build_crd
from .problems import Problem
from .schema_walk import apply_defaults, check_rules, list_type_violations, prune_nulls
from .semantics import spec_problems

__all__ = ["Problem", "admission_problems", "load_documents", "openapi_schema", "problems_in"]
_BRANCHES = ("int", "str", "float", "bool", "constrained-int", "constrained-str")


@lru_cache(maxsize=1)
def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the CRD (the same object `rft crd` writes)."""
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _BRANCHES or "[" in part or part.startswith("function"):
            continue  # union branch names pydantic adds (int | str): not part of the field path
        else:
            out += f".{part}" if out else part
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the field at `loc` (to list its fields in a fix)."""
    model: type[BaseModel] | None = api.RFTRun
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _field_description(loc: tuple[int | str, ...]) -> str | None:
    model = _model_at(loc)
    if model is None or not loc:
        return None
    name = loc[-1]
    for n, f in model.model_fields.items():
        if name in (n, f.alias):
            return f.description
    return None


def _pattern_fix(pattern: str, description: str | None) -> str:
    if pattern == URI_PATTERN:
        return f"write {URI_HELP}"
    if pattern in (DNS_LABEL, DNS_SUBDOMAIN):
        return "use lowercase letters, digits and '-', starting with a letter, e.g. answer"
    if pattern == QUANTITY_PATTERN:
        return "write a Kubernetes quantity: a number with an optional suffix, e.g. 2, 500m, 4Gi"
    if pattern == RELATIVE_PATH_PATTERN:
        return "write a relative path without '..', '.' or empty segments, e.g. team-a"
    if pattern.startswith("^https?"):
        return "write an http:// or https:// URL, e.g. https://llm-gateway.internal/v1"
    return description or f"match the pattern {pattern}"


def _fix_for(error: dict[str, Any]) -> tuple[str, str]:
    """(message, fix) for one pydantic error, in the manifest's own vocabulary."""
    kind: str = error["type"]
    loc: tuple[int | str, ...] = tuple(error["loc"])
    ctx = error.get("ctx", {})
    got = error.get("input")
    name = str(loc[-1]) if loc else ""
    description = _field_description(loc)
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = _field_names(model) if model else []
        close = [a for a in allowed if a.lower().startswith(name.lower())] or (
            difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        )
        if close:
            return f"unknown field '{name}'", f"did you mean '{close[0]}'?"
        return f"unknown field '{name}'", "remove it; allowed here: " + ", ".join(allowed)
    if kind == "missing":
        hint = f" ({description})" if description else ""
        return "required field is missing", f"add '{name}'{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {got!r}", "write a whole number without quotes, e.g. 2"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got!r}", "write a number without quotes, e.g. 0.5"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got!r}", "write true or false without quotes"
    if kind in ("string_type",):
        return f"expected a string, got {got!r}", "quote the value"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value fields), got {got!r}", (
            "write it as an object with fields" + (f": {description}" if description else "")
        )
    if kind == "list_type":
        return f"expected a list, got {got!r}", "write it as a YAML list (lines starting with '- ')"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()))
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        return f"must be {words} {bound}, got {got!r}", f"use a value {words} {bound}"
    if kind == "string_pattern_mismatch":
        return f"{got!r} is not valid here", _pattern_fix(str(ctx.get("pattern")), description)
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        return error["msg"].lower(), "change the number of entries or characters accordingly"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip(" '") for o in expected.replace(" or ", ",").split(",") if o.strip()]
        close = difflib.get_close_matches(str(got), options, n=1, cutoff=0.5)
        fix = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(options)}"
        return f"{got!r} is not one of {expected}", fix
    return error[
        "msg"
    ], description or "see `kubectl explain rftrun.spec` or examples/complete.yaml"


def problems_in(document: Any) -> list[Problem]:
    """Every problem with one RFTRun document: what admission rejects, then what would fail
    before any pod started (empty list: the run can start)."""
    found = admission_problems(document)
    if found:
        return found
    return spec_problems(api.parse_spec(prune_nulls(document["spec"])))


def admission_problems(document: Any) -> list[Problem]:
    """What the API server would reject (empty list: admission would accept it)."""
    if not isinstance(document, dict):
        return [
            Problem(
                "",
                "the document is not a mapping",
                "write an RFTRun object: apiVersion, kind, metadata, spec",
            )
        ]
    found: list[Problem] = []
    if document.get("apiVersion") != api.API_VERSION:
        found.append(
            Problem(
                "apiVersion",
                f"expected {api.API_VERSION}, got {document.get('apiVersion')!r}",
                f"set apiVersion: {api.API_VERSION}",
            )
        )
    if document.get("kind") != api.KIND:
        found.append(
            Problem(
                "kind",
                f"expected {api.KIND}, got {document.get('kind')!r}",
                f"set kind: {api.KIND}",
            )
        )
    if found:
        return found
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        found.append(
            Problem(
                "metadata.name", "required field is missing", "add metadata: {name: <run name>}"
            )
        )
    document = prune_nulls({k: v for k, v in document.items() if k != "status"})
    try:
        api.RFTRun.model_validate(document, strict=True)
    except ValidationError as error:
        found += _schema_problems(error)
    if found:
        return found
    schema = openapi_schema()
    defaulted = apply_defaults(schema, document)
    for violation in [*list_type_violations(schema, defaulted), *check_rules(schema, defaulted)]:
        message, _, fix = violation.message.partition("; ")
        # root rules cannot carry a fieldPath into metadata; their message starts with the field
        path = violation.path or message.split(" ", 1)[0]
        found.append(Problem(path, message, fix or "see the message"))
    return found


def _schema_problems(error: ValidationError) -> list[Problem]:
    """One problem per field; of the errors of a union (int | str) keep the telling one."""
    by_path: dict[str, list[dict[str, Any]]] = {}
    for item in error.errors():
        by_path.setdefault(_path(tuple(item["loc"])), []).append(dict(item))
    found = []
    for path, items in by_path.items():
        branches = [i for i in items if i["loc"] and i["loc"][-1] in _BRANCHES]
        if len(branches) > 1:
            telling = [i for i in branches if not i["type"].endswith("_type")]
            if telling:
                items = [telling[0]]
            else:
                got = branches[0].get("input")
                found.append(
                    Problem(
                        path,
                        f"expected an integer or a string, got {got!r}",
                        "write a whole number or quote the value, e.g. '500m' instead of 0.5",
                    )
                )
                continue
        for detail in items:
            message, fix = _fix_for(detail)
            found.append(Problem(path, message, fix))
    return found


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that rejects a key given twice in one mapping (as kubectl does)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list | dict):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a scalar", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; keep one of them", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class UnreadableManifest(ValueError):
    """A file that is not YAML text (binary, bad encoding, broken syntax)."""


def load_documents(path: Path) -> list[Any]:
    """The YAML documents of a file (empty documents skipped); UnreadableManifest with a
    one-line reason for anything that is not YAML text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UnreadableManifest(f"cannot be read ({error.strerror})") from error
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableManifest(
            f"not UTF-8 text (byte {error.start + 1}); is this a YAML manifest?"
        ) from error
    if "\x00" in text:
        raise UnreadableManifest("contains NUL bytes; is this a YAML manifest?")
    try:
        return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as error:
        raise UnreadableManifest(f"not valid YAML\n  {error}") from error
    except RecursionError as error:
        raise UnreadableManifest("nested too deeply to be a manifest") from error

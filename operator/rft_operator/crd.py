"""Generate the RFTRun CustomResourceDefinition from the pydantic models.

Pydantic writes JSON Schema; the API server wants a *structural* OpenAPI v3 schema. The
conversion inlines `$ref`s, turns `X | None` into an optional `X`, maps `int | str` to
`x-kubernetes-int-or-string`, and rewrites JSON-Schema-2020 keywords into their OpenAPI 3.0
forms. It is pure: the same models always give the same YAML.
"""

from __future__ import annotations

from typing import Any

import yaml

from . import api

ROOT_RULES = [
    {
        "rule": f"size(self.metadata.name) <= {api.MAX_NAME_LENGTH}",
        "message": f"metadata.name must be at most {api.MAX_NAME_LENGTH} characters (children "
        "are named <name>-it<k>-sampler and must stay DNS labels); choose a shorter name",
    },
    {
        "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "message": "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', "
        "starting with a letter) because it names Services; rename it, e.g. arith-smollm2",
    },
]

PRINTER_COLUMNS = [
    {"name": "Iteration", "type": "integer", "jsonPath": ".status.iteration"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage"},
    {
        "name": "Best",
        "type": "number",
        "jsonPath": ".status.best.evalScore",
        "description": "Best primary evaluation score",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Succeeded",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Succeeded")].status',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}
    return node


def structural(node: Any, defs: dict[str, Any]) -> Any:
    """Convert one pydantic JSON-schema node into a structural OpenAPI v3 node."""
    if isinstance(node, list):
        return [structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = _resolve(node, defs)
    if "anyOf" in node:
        options = [_resolve(o, defs) for o in node["anyOf"]]
        non_null = [o for o in options if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) != len(non_null) and rest.get("default", 0) is None:
            rest.pop("default")
        types = sorted(o.get("type", "") for o in non_null)
        if types == ["integer", "string"]:
            # each branch's checks apply to its own kind only (pattern: strings, minimum:
            # numbers), as in OpenAPI, so they can share the int-or-string node
            merged: dict[str, Any] = {"x-kubernetes-int-or-string": True}
            for option in non_null:
                merged.update({k: v for k, v in option.items() if k != "type"})
        elif len(non_null) == 1:
            merged = dict(non_null[0])
        else:
            raise ValueError(f"no structural form for anyOf {types}")
        return structural({**merged, **rest}, defs)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
            continue
        if key in ("items", "additionalProperties"):
            out[key] = structural(value, defs)
            continue
        out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def spec_and_status_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the RFTRun version."""
    spec = api.RFTRunSpec.model_json_schema(by_alias=True, mode="validation")
    status = api.RFTRunStatus.model_json_schema(by_alias=True, mode="serialization")
    spec_defs = spec.pop("$defs", {})
    status_defs = status.pop("$defs", {})
    return {
        "type": "object",
        "description": "A reinforced fine-tuning run: sample, score, filter, train, evaluate, "
        "repeat.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(spec, spec_defs),
            "status": structural(status, status_defs),
        },
        "x-kubernetes-validations": ROOT_RULES,
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/name": "rft", "app.kubernetes.io/part-of": "rft"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": ["all", "rft"],
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": spec_and_status_schema()},
                }
            ],
        },
    }


HEADER = "# Generated by `rft crd` from operator/rft_operator/api.py. Do not edit by hand.\n"


def render_crd() -> str:
    """The CRD as the YAML text checked in under crds/."""
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)

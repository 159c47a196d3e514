"""The generated CRD: in step with the models, valid for Kubernetes, structural, complete."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from rft_operator import api
from rft_operator.crd import build_crd, render_crd
from rft_operator.schema_walk import apply_defaults
from rft_operator.validation import openapi_schema

from ..conftest import ROOT, load_yaml

CRD_PATH = ROOT / "crds" / "rftruns.rft.dev.yaml"
K8S_VERSION = "1.33"


def schema() -> dict[str, Any]:
    return openapi_schema()


def test_checked_in_crd_is_what_the_models_generate() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == render_crd(), (
        "crds/rftruns.rft.dev.yaml is stale: run `rft crd -o crds/rftruns.rft.dev.yaml`"
    )


def test_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(load_yaml(CRD_PATH), K8S_VERSION, strict=True)


def test_crd_with_an_unknown_field_is_rejected_by_kubernetes_validate() -> None:
    crd = build_crd()
    crd["spec"]["versions"][0]["servedd"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)


def _nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _nodes(node[key], f"{path}[{key}]")
    return found


def test_schema_is_structural() -> None:
    """What the API server demands of a CRD schema: a type everywhere, no refs or unions."""
    for path, node in _nodes(schema()):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "$defs", "const", "title"} & set(node), path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if node.get("type") == "object" and path != ".metadata":
            assert "properties" in node or "additionalProperties" in node, path
        if isinstance(node.get("exclusiveMinimum"), bool):
            assert "minimum" in node, path
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key]


def test_printer_columns_point_at_declared_fields() -> None:
    columns = build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    status = schema()["properties"]["status"]["properties"]
    for column in columns:
        path = column["jsonPath"]
        if path.startswith(".status.conditions[?"):
            assert "[-1" not in path
            assert "type" in status["conditions"]["items"]["properties"]
            continue
        if path.startswith(".status."):
            node = schema()["properties"]["status"]
            for part in path.split(".")[2:]:
                node = node["properties"][part]
            declared = {"integer": "integer", "number": "number", "string": "string"}
            assert declared[node["type"]] == column["type"], path
    names = [c["name"] for c in columns]
    assert {"Iteration", "Stage", "Ready", "Succeeded", "Age"} <= set(names)


def test_status_subresource_and_names() -> None:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["plural"] == "rftruns"
    assert crd["spec"]["names"]["shortNames"] == ["rft"]
    assert crd["metadata"]["name"] == "rftruns.rft.dev"


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.yaml")))
def test_examples_match_the_crd_schema(example: str) -> None:
    manifest = load_yaml(ROOT / "examples" / example)
    validator = jsonschema.Draft4Validator(schema())
    assert list(validator.iter_errors(manifest)) == []
    assert list(validator.iter_errors(apply_defaults(schema(), manifest))) == []


def test_schema_rejects_a_wrong_type_in_an_example(minimal: dict[str, Any]) -> None:
    minimal["spec"]["iterations"] = {"max": "three"}
    errors = list(jsonschema.Draft4Validator(schema()).iter_errors(minimal))
    assert [list(e.absolute_path) for e in errors] == [["spec", "iterations", "max"]]


def test_schema_defaults_agree_with_model_defaults(minimal: dict[str, Any]) -> None:
    """Whoever fills defaults (API server or pydantic), the operator sees the same spec."""
    by_schema = apply_defaults(schema(), minimal)["spec"]
    by_model = api.RFTRunSpec.model_validate(minimal["spec"]).to_wire()
    assert by_schema == by_model


def _declared(node: dict[str, Any], value: Any, path: str) -> list[str]:
    """Paths in `value` the API server would prune because the schema does not declare them."""
    missing = []
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        for key, sub in value.items():
            if props is not None and key in props:
                missing += _declared(props[key], sub, f"{path}.{key}")
            elif isinstance(extra, dict):
                missing += _declared(extra, sub, f"{path}.{key}")
            else:
                missing.append(f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            missing += _declared(node.get("items", {}), item, f"{path}[{index}]")
    return missing


def test_every_status_field_is_declared() -> None:
    status = api.RFTRunStatus(
        observed_generation=2,
        iteration=1,
        stage="Training",
        message="training iteration 1",
        conditions=[
            api.Condition(
                type="Ready",
                status="True",
                reason="Running",
                message="m",
                last_transition_time="2026-01-01T00:00:00Z",
                observed_generation=2,
            )
        ],
        iterations=[
            api.IterationStatus(
                index=0,
                eval_score=0.4,
                eval_scores={"main/pass@1": 0.4},
                train_pass_rate=0.2,
                mean_reward=0.3,
                samples=80,
                accepted=10,
                checkpoint="pvc://rft-runs/a/it-0",
                durations={"sampling": 10.0},
                started_at="2026-01-01T00:00:00Z",
                finished_at="2026-01-01T00:10:00Z",
            )
        ],
        baseline=api.BaselineStatus(eval_score=0.3, eval_scores={"main/pass@1": 0.3}),
        best=api.BestStatus(iteration=0, eval_score=0.4, checkpoint="pvc://rft-runs/a/it-0"),
        start_time="2026-01-01T00:00:00Z",
        completion_time="2026-01-01T01:00:00Z",
        retry="1",
    ).to_wire()
    status_schema = schema()["properties"]["status"]
    assert _declared(status_schema, status, "status") == []
    assert list(jsonschema.Draft4Validator(status_schema).iter_errors(status)) == []
    # every field of the model was set above, so nothing escapes this check
    assert set(status) == {f.alias for f in api.RFTRunStatus.model_fields.values()}


def test_nested_defaults_exist_in_the_schema(minimal: dict[str, Any]) -> None:
    """Sections given without their list fields get the same defaults from the API server
    as from pydantic (a CEL rule reading a missing default would reject the object)."""
    minimal["spec"]["evaluation"] = {"sets": [{"name": "main", "uri": "pvc://d/e.jsonl"}]}
    minimal["spec"]["training"] = {"lora": {"r": 8}}
    by_schema = apply_defaults(schema(), minimal)["spec"]
    assert by_schema == api.RFTRunSpec.model_validate(minimal["spec"]).to_wire()
    assert by_schema["evaluation"]["passAtK"] == [1]
    assert by_schema["training"]["lora"]["targetModules"] == ["all-linear"]
    from rft_operator.validation import problems_in

    assert problems_in(minimal) == []


def test_every_model_default_is_declared_in_the_schema() -> None:
    """Walk every pydantic model reachable from the spec: a field with a default (value or
    factory) must carry the same default in the CRD schema."""
    from pydantic import BaseModel

    def check(model: type[BaseModel], node: dict[str, Any], path: str) -> None:
        props = node.get("properties", {})
        for name, field in model.model_fields.items():
            key = field.alias or name
            sub = props[key]
            if not field.is_required() and (
                field.default is not None or field.default_factory is not None
            ):
                default = field.get_default(call_default_factory=True)
                wire = (
                    default.model_dump(mode="json", by_alias=True, exclude_none=True)
                    if (isinstance(default, BaseModel))
                    else default
                )
                if isinstance(wire, list):
                    wire = [
                        w.model_dump(mode="json", by_alias=True, exclude_none=True)
                        if isinstance(w, BaseModel)
                        else w
                        for w in wire
                    ]
                assert "default" in sub, f"{path}.{key} has no default in the CRD"
                if isinstance(wire, dict):
                    assert apply_defaults(sub, sub["default"]) == wire, f"{path}.{key}"
                else:
                    assert sub["default"] == wire or apply_defaults(sub, sub["default"]) == wire
            inner = _model_of(field.annotation)
            if inner is not None:
                check(inner, sub.get("items", sub), f"{path}.{key}")

    check(api.RFTRunSpec, schema()["properties"]["spec"], "spec")


def _model_of(annotation: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None

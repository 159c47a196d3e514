"""What no CEL rule can judge, checked before any pod starts: a regex reward's pattern
compiles, a python reward's source parses and defines `reward(prompt, completion, answer)`,
requests do not exceed limits. Pure; `rft validate` and the planner both call it, so a spec
the API server admitted still fails with reason InvalidSpec instead of a crashing pod.
"""

from __future__ import annotations

import ast
import re
from decimal import Decimal, InvalidOperation

from rft_runtime.config.spec import RewardSpec

from .api import RFTRunSpec
from .api.sections import ResourceRequirements
from .problems import Problem

INVALID_SPEC = "InvalidSpec"
MAX_CLAIM_NAME = 253
REWARD_FUNCTION = "reward"
REWARD_ARGS = ("prompt", "completion", "answer")


def spec_problems(spec: RFTRunSpec) -> list[Problem]:
    """Every semantic problem of an admitted spec (empty: the jobs can start)."""
    found: list[Problem] = []
    for index, reward in enumerate(spec.rewards):
        found += _reward_problems(f"spec.rewards[{index}]", reward)
    for path, resources in (
        ("spec.sampler.resources", spec.sampler.resources),
        ("spec.training.resources", spec.training.resources),
        ("spec.runtime.resources", spec.runtime.resources),
    ):
        if resources is not None:
            found += _resource_problems(path, resources)
    if spec.sampler.rationalize is not None:
        problem = template_problem(spec.sampler.rationalize.template, ("prompt", "answer"))
        if problem:
            found.append(Problem("spec.sampler.rationalize.template", *problem))
    for path, uri in _uris(spec):
        claim = uri.split("://", 1)[1].split("/", 1)[0] if uri.startswith("pvc://") else ""
        if len(claim) > MAX_CLAIM_NAME:
            found.append(
                Problem(
                    path,
                    f"claim name is {len(claim)} characters, over the limit of {MAX_CLAIM_NAME}",
                    "use the name of an existing PersistentVolumeClaim",
                )
            )
    return found


def _uris(spec: RFTRunSpec) -> list[tuple[str, str]]:
    uris = [("spec.model.uri", spec.model.uri), ("spec.data.train", spec.data.train)]
    if spec.evaluation is not None:
        uris += [
            (f"spec.evaluation.sets[{i}].uri", s.uri) for i, s in enumerate(spec.evaluation.sets)
        ]
    uris += [(f"spec.rewards[{i}].model", r.model) for i, r in enumerate(spec.rewards) if r.model]
    return uris


def _reward_problems(path: str, reward: RewardSpec) -> list[Problem]:
    if reward.type == "regex" and reward.pattern is not None:
        try:
            re.compile(reward.pattern, re.DOTALL)
        except (re.error, RecursionError, OverflowError) as error:
            return [
                Problem(
                    f"{path}.pattern",
                    f"the regular expression does not compile: {error}",
                    "fix the pattern (Python `re` syntax); in YAML, single-quote it so "
                    "backslashes stay as written",
                )
            ]
    if reward.type == "python" and reward.source is not None:
        problem = python_source_problem(reward.source)
        if problem is not None:
            return [Problem(f"{path}.source", *problem)]
    return []


def python_source_problem(source: str) -> tuple[str, str] | None:
    """(message, fix) when `source` would fail in the sandbox before scoring anything."""
    try:
        tree = ast.parse(source, "<reward source>")
        compile(tree, "<reward source>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        line = getattr(error, "lineno", None)
        where = f" (line {line})" if line else ""
        detail = getattr(error, "msg", None) or str(error)
        return (
            f"the source does not parse{where}: {detail}",
            "fix the Python syntax; the source must define "
            "def reward(prompt, completion, answer) -> float",
        )
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name == REWARD_FUNCTION
        ):
            if isinstance(node, ast.AsyncFunctionDef):
                return (
                    "reward is async; the sandbox calls it as a plain function",
                    "write def reward(prompt, completion, answer) without async",
                )
            return _signature_problem(node.args)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == REWARD_FUNCTION for t in node.targets
        ):
            if isinstance(node.value, ast.Lambda):
                return _signature_problem(node.value.args)
            return None  # bound some other way (e.g. functools.partial): trust the author
        if isinstance(node, ast.ImportFrom) and any(
            (a.asname or a.name) == REWARD_FUNCTION for a in node.names
        ):
            return None
    return (
        "the source defines no top-level function named reward",
        "add def reward(prompt, completion, answer) -> float",
    )


def _signature_problem(args: ast.arguments) -> tuple[str, str] | None:
    positional = len(args.posonlyargs) + len(args.args)
    required_kwonly = [
        a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is None
    ]
    if (positional >= len(REWARD_ARGS) or args.vararg is not None) and not required_kwonly:
        needed = positional - len(args.defaults)
        if needed <= len(REWARD_ARGS):
            return None
    return (
        "reward must accept three positional arguments (prompt, completion, answer)",
        "write def reward(prompt, completion, answer) -> float",
    )


_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^\+?([0-9.]+(?:[eE][-+]?[0-9.]+)?)([a-zA-Z]{0,2})$")


def quantity_value(text: int | str) -> Decimal | None:
    """The value of a Kubernetes quantity (None when it is not one)."""
    if isinstance(text, int):
        return Decimal(text)
    match = _QUANTITY.match(text)
    if match is None or match.group(2) not in _SUFFIX:
        return None
    number, suffix = match.groups()
    try:
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation:
        return None


def _resource_problems(path: str, resources: ResourceRequirements) -> list[Problem]:
    found = []
    for name, request in sorted((resources.requests or {}).items()):
        limit = (resources.limits or {}).get(name)
        if limit is None:
            continue
        low, high = quantity_value(request), quantity_value(limit)
        if low is not None and high is not None and low > high:
            found.append(
                Problem(
                    f"{path}.requests[{name}]",
                    f"request {request} is above the limit {limit}",
                    f"lower requests.{name} or raise limits.{name} (a pod must fit its limits)",
                )
            )
    return found


def template_problem(template: str, names: tuple[str, ...]) -> tuple[str, str] | None:
    """A str.format template that uses only `names` (else the scoring Job would crash)."""
    try:
        template.format(**{name: "" for name in names})
    except (KeyError, IndexError, ValueError) as error:
        allowed = ", ".join("{" + n + "}" for n in names)
        return (
            f"is not a valid template ({type(error).__name__}: {error})",
            f"use only the placeholders {allowed}; write a literal brace as {{{{ or }}}}",
        )
    return None

"""Split an assert test into what the program must compute and what the grader decides.

`assert add(1, 2) == 3` becomes the *hole* `add(1, 2)`, which the sandboxed runner
evaluates and sends back as data, and the verdict `__hole0 == 3`, evaluated here in the
grading process on the decoded value. Expected values never reach the program. The grader
evaluates only literals, comparisons, boolean logic, arithmetic on numbers, subscripts and a
few pure built-ins (`SAFE_CALLS`); any other sub-expression is a hole. Statements before the
final assert are setup, run in the sandbox; a setup assignment of a literal (`expected = 5`)
is also known to the grader, so `assert f(x) == expected` keeps `expected` out of reach.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_SEQUENCE = 1 << 20


def _numbers(*values: Any) -> bool:
    return all(type(v) in (int, float, complex, bool) for v in values)


def _arith(fn: Callable[[Any, Any], Any], concat: bool = False) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if _numbers(a, b):
            return fn(a, b)
        if concat and type(a) is type(b) and type(a) in (str, list, tuple, bytes):
            if len(a) + len(b) > MAX_SEQUENCE:
                raise ValueError("sequence too long")
            return fn(a, b)
        raise TypeError(f"unsupported operands {type(a).__name__}, {type(b).__name__}")

    return apply


OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _arith(operator.add, concat=True),
    ast.Sub: _arith(operator.sub),
    ast.Mult: _arith(operator.mul),
    ast.Div: _arith(operator.truediv),
    ast.FloorDiv: _arith(operator.floordiv),
    ast.Mod: _arith(operator.mod),
}

_SAFE: list[tuple[str, Any]] = [
    ("abs", abs), ("round", round), ("len", len), ("sorted", sorted), ("set", set),
    ("frozenset", frozenset), ("tuple", tuple), ("list", list), ("min", min), ("max", max),
    ("sum", sum), ("bool", bool), ("float", float), ("all", all), ("any", any),
    ("math.isclose", math.isclose),
]  # fmt: skip
SAFE_CALLS: dict[str, Callable[..., Any]] = dict(_SAFE)
SAFE_KEYWORDS = {"rel_tol", "abs_tol", "reverse", "ndigits"}
_COMPARE_OR_LOGIC = (ast.Compare, ast.BoolOp, ast.UnaryOp, ast.Subscript, ast.Slice)
_DISPLAYS = (ast.Tuple, ast.List, ast.Set, ast.Dict)


@dataclass(frozen=True)
class Check:
    setup: str
    holes: tuple[str, ...]
    verdict_code: Any  # a code object over names __hole<k>, __op<k>, __call_<name>
    constants: dict[str, Any]

    def verdict(self, values: list[Any]) -> bool:
        if len(values) != len(self.holes):
            raise ValueError(f"{len(values)} values for {len(self.holes)} expressions")
        scope: dict[str, Any] = {"__builtins__": {}, **self.constants}
        scope.update({f"__hole{k}": v for k, v in enumerate(values)})
        scope.update({f"__op{k}": fn for k, fn in enumerate(OPERATORS.values())})
        scope.update({_call_name(n): fn for n, fn in SAFE_CALLS.items()})
        return bool(eval(self.verdict_code, scope))


def _call_name(name: str) -> str:
    return "__call_" + name.replace(".", "_")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


class _Splitter:
    def __init__(self, constants: dict[str, Any]) -> None:
        self.constants = constants
        self.holes: list[str] = []

    def hole(self, node: ast.expr) -> ast.expr:
        self.holes.append(ast.unparse(node))
        return ast.Name(id=f"__hole{len(self.holes) - 1}", ctx=ast.Load())

    def split(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Constant):
            return node
        if isinstance(node, ast.Name) and node.id in self.constants:
            return node
        if isinstance(node, _DISPLAYS):
            return self._children(node)
        if isinstance(node, _COMPARE_OR_LOGIC):
            if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
                return self.hole(node)
            return self._children(node)
        if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
            index = list(OPERATORS).index(type(node.op))
            args = [self.split(node.left), self.split(node.right)]
            return ast.Call(ast.Name(id=f"__op{index}", ctx=ast.Load()), args, [])
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            keywords_ok = all(k.arg in SAFE_KEYWORDS for k in node.keywords)
            starred = any(isinstance(a, ast.Starred) for a in node.args)
            if name in SAFE_CALLS and keywords_ok and not starred:
                return ast.Call(
                    ast.Name(id=_call_name(name), ctx=ast.Load()),
                    [self.split(a) for a in node.args],
                    [ast.keyword(k.arg, self.split(k.value)) for k in node.keywords],
                )
        return self.hole(node)

    def _children(self, node: ast.AST) -> ast.expr:
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr) and field != "ctx":
                setattr(node, field, self.split(value))
            elif isinstance(value, list):
                setattr(
                    node,
                    field,
                    [self.split(v) if isinstance(v, ast.expr) else v for v in value],
                )
        assert isinstance(node, ast.expr)
        return node


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def compile_check(test: str) -> Check:
    """The Check of one test; ValueError when it is not Python ending in an assert."""
    try:
        module = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"test is not valid Python: {exc}") from exc
    if not module.body or not isinstance(module.body[-1], ast.Assert):
        raise ValueError("a test must end with an assert statement")
    *setup, final = module.body
    assert isinstance(final, ast.Assert)
    constants: dict[str, Any] = {}
    for statement in setup:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            known, value = _literal(statement.value)
            name = statement.targets[0].id
            if known and not name.startswith("__"):
                constants[name] = value
            else:
                constants.pop(name, None)
        else:  # any other statement may rebind anything: trust no earlier constant
            constants.clear()
    splitter = _Splitter(constants)
    tree = ast.Expression(splitter.split(final.test))
    ast.fix_missing_locations(tree)
    return Check(
        setup="\n".join(ast.unparse(s) for s in setup),
        holes=tuple(splitter.holes),
        verdict_code=compile(tree, "<verdict>", "eval"),
        constants=constants,
    )

"""type: steps — a rule-based process reward for arithmetic-like work, usable as the PRM of
a search strategy (it judges partial solutions as well as finished ones).

Every `<expression> = <number>` in a step is checked by evaluating the expression
(numbers, + - * /, the times and division signs and parentheses only, parsed with `ast`,
never `eval`). A step scores 1 when all its equations hold and 0 when one fails; a step
without an equation is not judged. The value combines the judged steps by `aggregate`
(default min: one wrong step spoils the work). Work with no equation at all scores 0.5,
so a search ranks verified work above unverified work, and both above wrong work. The
reference answer is not read: this checks the process, the outcome is another reward's job.
"""

from __future__ import annotations

import ast
import re

from ..config.spec import RewardSpec
from .base import RewardResult
from .reward_models import aggregate, split_steps

DEFAULT_SEPARATOR = "\n"
NOTHING_TO_CHECK = 0.5
_RUN = re.compile(r"[-+*/\u00d7\u00f7().\d\s]*$")  # the arithmetic just before an "="
_NUMBER = re.compile(r"\s*(-?\d+(?:\.\d+)?)")
_OPERATOR = re.compile(r"\d\s*[-+*/\u00d7\u00f7]\s*[-(\d]")
_MAX_CHARS = 200  # longer expressions are not judged (no huge powers or nesting)


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)  # type: ignore[arg-type]  # checked just above
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _value(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
    raise ValueError("not arithmetic")


def evaluate(expression: str) -> float | None:
    """The value of a plain arithmetic expression, or None when it is not one."""
    text = expression.replace("\u00d7", "*").replace("\u00f7", "/").strip().lstrip("+*/").strip()
    if not text or len(text) > _MAX_CHARS or not _OPERATOR.search(text):
        return None
    try:
        return _value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def equations(step: str) -> list[bool]:
    """Whether each checkable equation of a step holds (chains `a + b = c + d = e` too)."""
    found = []
    for at in (m.start() for m in re.finditer("=", step)):
        run = _RUN.search(step[:at])
        number = _NUMBER.match(step, at + 1)
        if run is None or number is None:
            continue
        value = evaluate(run.group(0))
        if value is None:
            continue
        claimed = float(number.group(1))
        found.append(abs(value - claimed) <= 1e-6 * max(1.0, abs(value)))
    return found


def step_checks(completion: str, separator: str = DEFAULT_SEPARATOR) -> list[float]:
    """1.0 or 0.0 per step that has an equation (steps without one are left out)."""
    scores = []
    for step in split_steps(completion, separator):
        checks = equations(step)
        if checks:
            scores.append(1.0 if all(checks) else 0.0)
    return scores


def steps_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    scores = step_checks(completion, spec.step_separator or DEFAULT_SEPARATOR)
    if not scores:
        return RewardResult(NOTHING_TO_CHECK, "no equation to check")
    value = aggregate(scores, spec.aggregate or "min")
    wrong = scores.count(0.0)
    return RewardResult(value, f"{wrong} of {len(scores)} steps wrong" if wrong else None)

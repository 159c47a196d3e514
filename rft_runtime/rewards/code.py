"""type: code — run model-written Python against the row's tests; reward = pass fraction.

The program is the last ```python (or ```py, or plain ```) block of the completion, or the
whole completion when it has none. The tests are the reward's reference (the data's answer
column, or `answerField`, e.g. a `tests` column), one of:
- a JSON list of assert statements: `["assert add(1, 2) == 3", ...]`, each run after the
  program in its namespace;
- a JSON list of `{"input": ..., "output": ...}` pairs: the program runs once per pair with
  `input` on stdin, and its stripped stdout must equal the stripped `output`;
- a JSON object `{"tests": [...]}` holding either list;
- plain text: each line starting with `assert` is one test (or the whole text is one test).
All tests of one completion run in one sandboxed child (see `sandbox.py`) under
`code.timeoutSeconds` and `code.memoryMb`; tests not reached before the limit fail.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..config.spec import CodeSpec, RewardSpec
from .base import RewardResult, zero
from .sandbox import GUARD, isolation_prefix, run_child

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)

_CHILD = (
    GUARD
    + r"""
import contextlib, io, json, os, sys

_out = os.fdopen(os.dup(1), "w")
job = json.loads(sys.stdin.read())
sys.stdout = io.StringIO()
sys.stdin = io.StringIO("")
os.close(0)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray fd-level prints cannot mix with results
_install_guard()
code = compile(job["code"], "<solution>", "exec")
for test in job["tests"]:
    ok, error = False, "wrong output"
    try:
        if job["kind"] == "assert":
            scope = {"__name__": "__main__"}
            exec(code, scope)
            exec(compile(test, "<test>", "exec"), scope)
            ok = True
        else:
            sys.stdin = io.StringIO(test["input"])
            sys.stdout = captured = io.StringIO()
            try:
                exec(code, {"__name__": "__main__"})
            except SystemExit as stop:
                if stop.code not in (None, 0):
                    raise
            ok = captured.getvalue().strip() == test["output"].strip()
    except BaseException as exc:
        ok, error = False, f"{type(exc).__name__}: {exc}"
    finally:
        sys.stdout = io.StringIO()
    _out.write("1\n" if ok else "0 " + " ".join(error.split())[:200] + "\n")
    _out.flush()
"""
)


def extract_code(completion: str) -> str:
    """The last python-tagged fenced block, else the last fenced block, else everything."""
    blocks = _FENCE.findall(completion)
    tagged = [body for tag, body in blocks if tag.lower() in ("python", "py", "python3")]
    if tagged:
        return str(tagged[-1])
    if blocks:
        return str(blocks[-1][1])
    return completion


def parse_tests(reference: str) -> tuple[str, list[Any]]:
    """('assert', [statement, ...]) or ('io', [{'input', 'output'}, ...]); ValueError when
    the reference holds no test."""
    try:
        data: Any = json.loads(reference)
    except ValueError:
        data = None
    if isinstance(data, dict) and "tests" in data:
        data = data["tests"]
    if isinstance(data, str):
        reference, data = data, None
    if data is None:
        lines = [line for line in reference.splitlines() if line.strip().startswith("assert")]
        tests = lines or ([reference] if reference.strip() else [])
        if not tests:
            raise ValueError("no tests in the reference answer")
        return "assert", tests
    if not isinstance(data, list) or not data:
        raise ValueError(
            "tests must be a non-empty JSON list of assert statements or {input, output} pairs"
        )
    if all(isinstance(t, str) for t in data):
        return "assert", list(data)
    if all(isinstance(t, dict) and "input" in t and "output" in t for t in data):
        return "io", [{"input": str(t["input"]), "output": str(t["output"])} for t in data]
    raise ValueError(
        "tests must be all assert strings or all {input, output} objects, not a mixture"
    )


def run_tests(code: str, kind: str, tests: list[Any], limits: CodeSpec) -> RewardResult:
    """Run the tests in one sandboxed child; the value is the fraction that passed."""
    tests = tests[: limits.max_tests]
    payload = json.dumps({"code": code, "kind": kind, "tests": tests}).encode()
    try:
        compile(code, "<solution>", "exec")
    except (SyntaxError, ValueError) as exc:
        return zero(f"program does not compile: {exc}"[:300])
    child = run_child(
        _CHILD,
        payload,
        time_limit=limits.timeout_seconds,
        memory=limits.memory_mb << 20,
        prefix=isolation_prefix(),
        extra_flags=("-S",),
        processes=64,
    )
    marks = child.stdout.decode("utf-8", "replace").splitlines()
    passed = sum(1 for m in marks if m == "1")
    value = passed / len(tests)
    failures = [m[2:] for m in marks if m.startswith("0")]
    first = f"; first failure: {failures[0]}" if failures else ""
    if len(marks) >= len(tests) and child.returncode == 0:
        if passed == len(tests):
            return RewardResult(value)
        return RewardResult(value, f"{passed}/{len(tests)} passed{first}")
    if child.timed_out:
        why = f"time limit {limits.timeout_seconds:g}s"
    else:
        why = f"exit {child.returncode}: {child.last_error_line()}"
    return RewardResult(
        value, f"{passed}/{len(tests)} passed; stopped after {len(marks)} ({why}){first}"
    )


def code_reward(spec: RewardSpec, prompt: str, completion: str, answer: str) -> RewardResult:
    try:
        kind, tests = parse_tests(answer)
    except ValueError as exc:
        return zero(f"{exc}; put the tests in the answer column or set rewards[].answerField")
    return run_tests(extract_code(completion), kind, tests, spec.code or CodeSpec())


def code_rewards(
    spec: RewardSpec, prompts: Sequence[str], completions: Sequence[str], answers: Sequence[str]
) -> list[RewardResult]:
    """Completions of a batch run in parallel sandboxes, one per CPU core."""
    workers = max(1, min(os.cpu_count() or 1, len(completions)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(
            pool.map(
                lambda item: code_reward(spec, *item),
                zip(prompts, completions, answers, strict=True),
            )
        )
